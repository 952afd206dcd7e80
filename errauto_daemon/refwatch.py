"""Refs as an intake: an update of a branch matching `submit_refs` is a submission.

The submission is the diff from the merge-base with the target to the new
tip, titled and authored from the tip commit, and carried as a one-commit
mail so the rest of errauto reads it like any format-patch. A ref named
`refs/for/<branch>` (Gerrit's convention) targets `<branch>` when that
branch exists; any other matching ref targets the configured target.

`refs_seen` in the store remembers the last tip submitted per ref, so a
restart does not submit the same update again, and a ref that moves again
is submitted again.
"""
from __future__ import annotations

import email.utils
import fnmatch
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import pygit2

from errauto_daemon import config as config_mod
from errauto_daemon import git, intake, patchfile
from errauto_daemon.store import Store, Submission
from errauto_daemon.workspace import common_dir, repo_root

log = logging.getLogger("errauto.refs")


def matching_refs(repo: pygit2.Repository, patterns: Iterable[str]) -> dict[str, str]:
    """Refs matching any pattern, with the commit each points to."""
    out = {}
    pats = tuple(patterns)
    for name in repo.references:
        if any(fnmatch.fnmatchcase(name, p) for p in pats):
            try:
                out[name] = str(repo.references[name].peel(pygit2.Commit).id)
            except (pygit2.GitError, ValueError, KeyError):
                continue  # not a commit
    return out


def target_for(repo: pygit2.Repository, ref: str, default: str) -> str:
    if ref.startswith("refs/for/"):
        branch = ref[len("refs/for/"):].split("%", 1)[0]  # Gerrit allows refs/for/main%topic=x
        if repo.references.get("refs/heads/" + branch) is not None:
            return branch
    return default


def patch_for(repo: pygit2.Repository, target: str, tip: str) -> bytes | None:
    """The diff from the merge-base with `target` to `tip`, as a one-commit mail."""
    target_tip = repo.references["refs/heads/" + target].target
    commit = repo[tip]
    assert isinstance(commit, pygit2.Commit)
    base = repo.merge_base(commit.id, target_tip)
    if base is None:
        return None
    diff = git.run(("diff", "--binary", "--full-index", "--no-color", "--no-ext-diff", str(base), tip),
                   common_dir(repo)).stdout
    if not diff.strip():
        return b""
    author = commit.author
    when = datetime.fromtimestamp(author.time, timezone(timedelta(minutes=author.offset)))
    return patchfile.as_mail(tip, author.name, author.email, email.utils.format_datetime(when),
                             commit.message, diff)


def submit_ref(store: Store, repo: pygit2.Repository, ref: str, tip: str, *,
               source: str = "ref", note: str | None = None) -> Submission | None:
    """Turn one ref update into a submission (recorded in refs_seen)."""
    root = repo_root(repo)
    config = config_mod.load(repo)
    target = target_for(repo, ref, config.target)
    data = patch_for(repo, target, tip)
    if not data:
        store.set_ref_seen(root, ref, tip, None)
        log.info("%s at %s: %s", ref, tip[:12], "no history shared with the target" if data is None
                 else "changes nothing against the target")
        return None
    result = intake.submit(store, root, data, source=source, name=ref, target=target, note=note)
    store.set_ref_seen(root, ref, tip, result.submission.id)
    log.info("%s at %s: submission %d (%s)", ref, tip[:12], result.submission.id, result.submission.state)
    return result.submission


def scan(store: Store, root: str) -> list[Submission]:
    """Submit every matching ref whose tip was not submitted before."""
    repo = intake.open_repo(root)
    config = config_mod.load(repo)
    out = []
    for ref, tip in sorted(matching_refs(repo, config.submit_refs).items()):
        if store.ref_seen(root, ref) == tip:
            continue
        sub = submit_ref(store, repo, ref, tip)
        if sub is not None:
            out.append(sub)
    return out
