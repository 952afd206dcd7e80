"""`errauto hook-impl ...`: what the git hooks and pre-commit framework hooks run.

    check FILE...      errauto-check (framework, pre-commit stage): would each patch
                       file be accepted (parsed, path rules, applies to the target's
                       tip, in memory)? A bad one stops the commit; nothing is recorded
    post-commit        errauto-submit (framework, post-commit stage) and the plain git
                       hook: submit the patch files the new commit added or changed,
                       tied to that commit; never fails (a commit cannot be undone)
    status             errauto-status (framework): one line on the review backlog and
                       the daemon; blocks only with --fail-on and that level reached
    pre-commit         the plain git hook: staged patch files as `check`, then `status`
    pre-push           the plain git hook: `status`
    post-receive       the server hook: pushes to submit refs become submissions
    submit FILE...     the old name of `check`, kept so old configurations say what changed

A patch file becomes a submission only once the commit that adds it exists:
a commit another hook (or a bad patch file) stops leaves nothing behind for
the daemon to merge, and the daemon never races the user's own commit.

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
import re
import sys
import time
from argparse import Namespace
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

from errauto_daemon import git
from errauto_daemon.domain import State
from errauto_daemon.errors import FatalError, printable

if TYPE_CHECKING:  # imported where used: post-receive must start without them
    import pygit2

    from errauto_daemon.config import Config



def _say(text: str) -> None:
    print(f"errauto: {printable(text)}", flush=True)  # names and titles come from patches


# --------------------------------------------------------------------------
# client side

def check(files: Sequence[str], *, contents: dict[str, bytes] | None = None) -> int:
    """Whether each patch file would be accepted: parsed, path rules, applies to the target's tip.

    Everything happens in memory: nothing is recorded and nothing written, so
    a commit this stops leaves no trace. Submitting is the post-commit hook's.
    """
    import pygit2

    from errauto_daemon import config as config_mod
    from errauto_daemon.errors import PatchRejected
    from errauto_daemon.repo import open_repo

    if not files:
        return 0
    repo = open_repo(".")
    config = config_mod.load(repo)
    tip = repo.references[config.target_ref].peel(pygit2.Commit)
    bad = 0
    for name in files:
        data = contents[name] if contents is not None else Path(name).read_bytes()
        try:
            _applies(repo, config, tip, data, name)
        except PatchRejected as exc:
            _say(f"{name}: {exc.reason}")
            bad += 1
            continue
        _say(f"{name} applies on {config.target}; it is submitted once committed")
    if bad:
        _say(f"{bad} patch file(s) would not be accepted; fix or unstage them")
        return 1
    _warn_without_post_commit()
    return 0


def _applies(repo: pygit2.Repository, config: Config, tip: pygit2.Commit, data: bytes, name: str) -> None:
    """Raise PatchRejected unless the patch would reach its checks (the validator's first steps)."""
    from errauto_daemon.admission import admit

    admit(repo, config, tip, data, name)


def _warn_without_post_commit() -> None:
    """Patch files are submitted by the post-commit hook: say so when there is none."""
    from errauto_daemon.commands.hooks import hooks_dir

    try:
        directory, _ = hooks_dir(".")
    except FatalError:
        return
    if not (directory / "post-commit").exists():
        _say("warning: no post-commit hook is installed, so committed patch files are not submitted "
             "(errauto hooks install, or pre-commit install --hook-type post-commit)")


def submit(files: Sequence[str]) -> int:
    """The old name of `check`: submitting before the commit exists is what it no longer does."""
    _say("`hook-impl submit` only checks now; patch files are submitted after the commit "
         "by the post-commit hook (errauto-submit): see docs/hooks.md")
    return check(files)


# Reflog subjects of HEAD that `git commit` itself writes.
COMMIT_ACTIONS = ("commit", "commit (initial)", "commit (amend)", "commit (merge)")


def post_commit(*, only: str | None = None) -> int:
    """Submit the patch files the commit just made (HEAD) added or changed.

    A post-commit hook cannot stop the commit: any failure is one warning
    line and exit code 0.
    """
    if "errauto-submit" in os.environ.get("SKIP", "").replace(" ", "").split(","):
        return 0
    try:
        _post_commit(only)
    except Exception as exc:
        from errauto_daemon.redact import redact

        _say(f"warning: the commit was made but its patch files were not submitted: "
             f"{redact(str(exc)) or type(exc).__name__}")
    return 0


def _post_commit(only: str | None) -> None:
    from errauto_daemon import guard, intake, patchfile
    from errauto_daemon.errors import PatchRejected
    from errauto_daemon.presence import wake
    from errauto_daemon.store import Store

    head = git.run(("rev-parse", "--verify", "-q", "HEAD^{commit}"), ".", check=False).stdout.decode().strip()
    if not head:
        return
    files = committed_patch_files(head, only)
    if not files:
        return
    why_not = _not_fresh(head)
    if why_not:
        _say(f"{len(files)} patch file(s) in {head[:12]} not submitted: {why_not} "
             "(errauto submit FILE submits one by hand)")
        return
    store = Store()
    for path, data in files.items():
        try:
            # Only a commit made past the check (--no-verify) carries such a file.
            patch = patchfile.parse(data, path)
            guard.check_names(patch)
        except PatchRejected as exc:
            _say(f"{path}: not submitted: {exc.reason}")
            continue
        result = intake.submit(store, ".", data, source="post-commit", name=f"{head}:{path}",
                               title=patch.title)
        sub = result.submission
        if result.created:
            _say(f"submitted {path} as #{sub.id} ({sub.title})")
        else:
            _say(f"{path} is already submission #{sub.id} ({sub.state})")
    wake()


def _not_fresh(head: str) -> str | None:
    """Why HEAD is not a commit `git commit` just made and ran this hook for; None if it is."""
    if "GIT_INDEX_FILE" not in os.environ:
        # git sets it for every commit hook; a hand-run `pre-commit run` has none.
        return "not run by git after a commit"
    entry = git.run(("reflog", "-1", "--format=%H %gs", "HEAD"), ".", check=False).stdout.decode(
        "utf-8", "replace").strip()
    commit, _, subject = entry.partition(" ")
    action = subject.split(":", 1)[0]
    if commit != head or action not in COMMIT_ACTIONS:
        return f"HEAD was not made by git commit ({action or 'no reflog'})"
    return None


def committed_patch_files(commit: str, only: str | None = None) -> dict[str, bytes]:
    """Patch files `commit` added or changed (regular files only), their bytes as committed.

    A merge commit has no changes of its own (`diff-tree` without `-m`).
    `only`: a regular expression a path must match (searched, as pre-commit's `files:`).
    """
    from errauto_daemon.patchfile import SUFFIXES

    raw = git.run(("diff-tree", "-r", "-z", "--root", "--no-renames", "--no-commit-id",
                   "--diff-filter=AMT", commit), ".").stdout
    fields = raw.split(b"\0")
    found: dict[str, str] = {}
    for meta, name in zip(fields[0::2], fields[1::2]):  # not strict: the closing NUL leaves one empty field
        _old_mode, new_mode, _old, blob, _status = meta.decode().lstrip(":").split(" ")
        path = name.decode("utf-8", "surrogateescape")
        if new_mode not in ("100644", "100755") or not path.lower().endswith(SUFFIXES):
            continue
        if only is not None and not re.search(only, path):
            continue
        found[path] = blob
    blobs = git.read_objects(".", list(found.values()))
    return {path: blobs[blob] or b"" for path, blob in found.items()}


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
    """The plain git pre-commit hook: check the staged patch files, then the status line."""
    # What is committed is what is in the index git commits from: `.git/index`,
    # or the temporary one `git commit -a` / `git commit PATH` hand the hook.
    from errauto_daemon.patchfile import SUFFIXES

    index = os.environ.get("GIT_INDEX_FILE")
    listing = git.run(("diff", "--cached", "--name-only", "--diff-filter=ACMR", "-z"), ".",
                      index_file=index).stdout
    names = [n for n in listing.decode("utf-8", "surrogateescape").split("\0")
             if n and n.lower().endswith(SUFFIXES)]
    contents = {n: git.run(("cat-file", "blob", f":{n}"), ".", index_file=index).stdout for n in names}
    code = check(names, contents=contents)
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
        verb = State.QUEUED if sub.state == State.QUEUED else sub.state
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


# -- the command line (main.py dispatches each parsed command here) --------------

def cli_submit(args: Namespace) -> int:
    """`errauto hook-impl submit`."""
    return submit(args.files)


def cli_check(args: Namespace) -> int:
    """`errauto hook-impl check`."""
    return check(args.files)


def cli_post_commit(args: Namespace) -> int:
    """`errauto hook-impl post-commit`."""
    return post_commit(only=args.only)


def cli_status(args: Namespace) -> int:
    """`errauto hook-impl status`, and pre-push."""
    return status(fail_on=args.fail_on)


def cli_pre_commit(args: Namespace) -> int:
    """`errauto hook-impl pre-commit`."""
    return pre_commit(fail_on=args.fail_on)


def cli_post_receive(args: Namespace) -> int:
    """`errauto hook-impl post-receive`."""
    return post_receive(read_stdin_lines())
