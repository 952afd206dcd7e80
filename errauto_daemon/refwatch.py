"""Refs as an intake: an update of a ref matching `submit_refs` is a submission.

The submission is the diff from the merge-base with the target to the new
tip, titled and authored from the tip commit, and carried as a one-commit
mail so the rest of errauto reads it like any format-patch. A ref named
`refs/for/<branch>` (Gerrit's convention) targets `<branch>` when that
branch exists; any other matching ref targets the configured target.

One implementation for both callers: the daemon's ref watch (`scan`) and the
server's post-receive hook (`submit_update`). It uses the git command line
only, no pygit2, because the hook runs on the pusher's clock.

`refs_seen` in the store remembers the last tip submitted per ref, so a
restart does not submit the same update again, and a ref that moves again
is submitted again.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from pathlib import Path

from errauto_daemon import config as config_mod
from errauto_daemon import git, intake, patchfile
from errauto_daemon.config import Config
from errauto_daemon.store import Store, Submission

log = logging.getLogger("errauto.refs")


class NoSharedHistory(Exception):
    """The pushed tip has no merge-base with the target."""


def matching_refs(gitdir: Path, patterns: tuple[str, ...]) -> dict[str, str]:
    """Refs matching any pattern, with the commit each points to."""
    listing = git.output(("for-each-ref", "--format=%(refname)%00%(objecttype)%00%(objectname)%00%(*objectname)"),
                         gitdir)
    out = {}
    for line in listing.splitlines():
        name, kind, oid, peeled = line.split("\0")
        if any(fnmatchcase(name, p) for p in patterns) and kind in ("commit", "tag"):
            out[name] = oid if kind == "commit" else peeled
    return {k: v for k, v in out.items() if v}


def submit_update(store: Store, gitdir: Path, root: str, config: Config, ref: str, tip: str, *,
                  source: str, note: str | None = None,
                  workdir: Path | None = None) -> tuple[Submission, bool] | None:
    """Record one ref update as a submission (and in refs_seen).

    Returns the submission and whether it is new, or None when the tip
    changes nothing against its target. Raises NoSharedHistory.
    """
    branch = ref[len("refs/for/"):].split("%", 1)[0] if ref.startswith("refs/for/") else None
    specs = [tip] + ([f"refs/heads/{branch}^{{commit}}"] if branch else [])
    found = git.read_objects(gitdir, specs)
    target = branch if branch and found[specs[-1]] is not None else config.target
    if target != config.target:
        config = config_mod.load_with_git(gitdir, target, workdir=workdir)
    data = _as_mail(gitdir, target, tip, found[tip])
    if data is None:
        store.set_ref_seen(root, ref, tip, None)
        return None
    result = intake.record(store, root, config, data, source=source, name=ref, note=note)
    store.set_ref_seen(root, ref, tip, result.submission.id)
    return result.submission, result.created


def scan(store: Store, root: str) -> list[Submission]:
    """Submit every matching ref whose tip was not submitted before (the daemon's watch)."""
    gitdir = Path(git.output(("rev-parse", "--absolute-git-dir"), root))
    workdir = None if git.output(("rev-parse", "--is-bare-repository"), root) == "true" else Path(root)
    config = config_mod.load_with_git(gitdir, workdir=workdir)
    out = []
    for ref, tip in sorted(matching_refs(gitdir, config.submit_refs).items()):
        if store.ref_seen(root, ref) == tip:
            continue
        try:
            done = submit_update(store, gitdir, root, config, ref, tip, source="ref", workdir=workdir)
        except NoSharedHistory as exc:
            store.set_ref_seen(root, ref, tip, None)
            log.info("%s: %s", ref, exc)
            continue
        if done is None:
            log.info("%s at %s changes nothing against the target", ref, tip[:12])
            continue
        log.info("%s at %s: submission %d (%s)", ref, tip[:12], done[0].id, done[0].state)
        out.append(done[0])
    return out


def _as_mail(gitdir: Path, target: str, tip: str, commit: bytes | None) -> bytes | None:
    """The diff from the merge-base with `target` to `tip`, as a one-commit mail."""
    if commit is None:
        raise NoSharedHistory(f"{tip[:12]} is not a commit in the repository")
    # A...B diffs from the merge-base of A and B: no separate merge-base call.
    proc = git.run(("diff", "--binary", "--full-index", "--no-color", "--no-ext-diff",
                    f"refs/heads/{target}...{tip}"), gitdir, check=False)
    if proc.returncode != 0:
        raise NoSharedHistory(f"{tip[:12]} shares no history with {target}")
    if not proc.stdout.strip():
        return None
    header, _, message = commit.decode("utf-8", "surrogateescape").partition("\n\n")
    author = next(line for line in header.splitlines() if line.startswith("author "))
    # "author Name <mail> 1700000000 +0100"
    who, _, stamp = author[len("author "):].rpartition("> ")
    name, _, mail = who.partition(" <")
    seconds, offset = stamp.split()
    sign = -1 if offset.startswith("-") else 1
    zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    date = datetime.fromtimestamp(int(seconds), zone).strftime("%a, %d %b %Y %H:%M:%S %z")
    return patchfile.as_mail(tip, name, mail, date, message.strip("\n"), proc.stdout)
