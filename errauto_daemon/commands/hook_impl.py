"""`errauto hook-impl ...`: what the git hooks and pre-commit framework hooks run.

    submit FILE...     errauto-submit (framework): submit patch files; a malformed
                       or unsafe one stops the commit with its reason
    status             errauto-status (framework): one line on the review backlog and
                       the daemon; blocks only with --fail-on and that level reached
    pre-commit         the plain git hook: staged patch files as `submit`, then `status`
    pre-push           the plain git hook: `status`
    post-receive       the server hook: pushes to submit refs become submissions

Hooks run with GIT_DIR, GIT_INDEX_FILE and friends set for the repository
being committed to or pushed to. errauto's own git commands drop them
(git.py), and checks never see them (checks.py), so nothing here can act
on another repository by accident.

post-receive is on the pusher's clock: it imports neither pygit2 nor the
validation pipeline, reads the repository with the git command line, only
records (and removes the `refs/for/...` refs it recorded, see refwatch.py),
tells the pusher which of their earlier commits errauto merged as a rewrite,
and never fails the push (an error becomes a warning line).
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

from errauto_daemon import git

SUFFIXES = (".patch", ".diff", ".eml", ".mbox")


def _say(text: str) -> None:
    print(f"errauto: {text}", flush=True)


# --------------------------------------------------------------------------
# client side

def submit(files: Sequence[str], *, contents: dict[str, bytes] | None = None) -> int:
    """Submit patch files (their bytes from `contents`, else from disk)."""
    from errauto_daemon import guard, intake, patchfile
    from errauto_daemon import config as config_mod
    from errauto_daemon.errors import PatchRejected
    from errauto_daemon.presence import wake
    from errauto_daemon.store import Store

    if not files:
        return 0
    repo = intake.open_repo(".")
    config = config_mod.load(repo)
    store = Store()
    bad = 0
    for name in files:
        data = contents[name] if contents is not None else Path(name).read_bytes()
        try:
            patch = patchfile.parse(data, name, limits=config.limits())
            guard.check_names(patch)
        except PatchRejected as exc:
            _say(f"{name}: {exc.reason}")
            bad += 1
            continue
        result = intake.submit(store, ".", data, source="pre-commit", name=name)
        sub = result.submission
        if result.created:
            _say(f"submitted {name} as #{sub.id} ({sub.title})")
        else:
            _say(f"{name} is already submission #{sub.id} ({sub.state})")
    if bad:
        _say(f"{bad} patch file(s) cannot be submitted; fix or unstage them (or commit with --no-verify)")
        return 1
    wake()
    return 0


def status(*, fail_on: str | None) -> int:
    from errauto_daemon.health import LEVELS, assess
    from errauto_daemon.presence import running_pid
    from errauto_daemon.store import Store

    health = assess(Store(), daemon_pid=running_pid())
    print(health.line(), flush=True)
    if fail_on is not None and LEVELS.index(health.level) >= LEVELS.index(fail_on):
        return 1
    return 0


def pre_commit(*, fail_on: str | None) -> int:
    """The plain git pre-commit hook: the staged patch files, then the status line."""
    listing = git.run(("diff", "--cached", "--name-only", "--diff-filter=ACMR", "-z"), ".").stdout
    names = [n for n in listing.decode("utf-8", "surrogateescape").split("\0")
             if n and n.lower().endswith(SUFFIXES)]
    # What is committed is what is staged, not what is in the work tree.
    contents = {n: git.run(("cat-file", "blob", f":{n}"), ".").stdout for n in names}
    code = submit(names, contents=contents)
    return max(code, status(fail_on=fail_on))


# --------------------------------------------------------------------------
# server side

def post_receive(lines: Sequence[str]) -> int:
    """Record each push to a submit ref; print `errauto: queued <id> (<title>)`."""
    started = time.monotonic()
    try:
        gitdir = Path(os.environ.get("GIT_DIR", ".")).resolve()
        _post_receive(gitdir, lines)
    except Exception as exc:  # never fail, never block a push
        from errauto_daemon.redact import redact

        _say(f"warning: the push was accepted but not submitted: {redact(str(exc)) or type(exc).__name__}")
    if os.environ.get("ERRAUTO_HOOK_TIMING"):
        _say(f"hook took {(time.monotonic() - started) * 1000:.0f} ms")
    return 0


def _post_receive(gitdir: Path, lines: Sequence[str]) -> None:
    from errauto_daemon import config as config_mod
    from errauto_daemon import refwatch
    from errauto_daemon.presence import wake
    from errauto_daemon.store import Store

    updates = [parts for parts in (line.split() for line in lines)
               if len(parts) == 3 and set(parts[1]) != {"0"}]  # an all-zero new id: a deletion
    if not updates:
        return
    config = config_mod.load_with_git(gitdir)
    wanted = [u for u in updates if any(fnmatchcase(u[2], p) for p in config.submit_refs)]
    if not wanted:
        return
    note = _push_note()
    store = Store()
    # A bare repository is named by its git dir, a pushed-to non-bare one by its work tree.
    root = str(gitdir) if gitdir.name != ".git" else str(gitdir.parent)
    for _old, new, ref in wanted:
        done = refwatch.submit_update(store, gitdir, root, config, ref, new, source="post-receive", note=note)
        if done is None:
            _say(f"{ref}: nothing to submit (no changes against its target)")
            continue
        sub, created = done
        verb = "queued" if sub.state == "queued" else sub.state
        _say(f"{verb} {sub.id} ({sub.title})" + ("" if created else " (already submitted)"))
    for line in refwatch.replacements_to_tell(store, gitdir, root, [new for _old, new, _ref in wanted]):
        _say(line)
    wake()


def _push_note() -> str | None:
    """`git push -o errauto.note=...` (push options reach the hook as env vars)."""
    notes = []
    for i in range(int(os.environ.get("GIT_PUSH_OPTION_COUNT", "0") or 0)):
        option = os.environ.get(f"GIT_PUSH_OPTION_{i}", "")
        if option.startswith("errauto.note="):
            notes.append(option[len("errauto.note="):])
    return "\n".join(notes) or None


def read_stdin_lines() -> list[str]:
    return sys.stdin.read().splitlines()
