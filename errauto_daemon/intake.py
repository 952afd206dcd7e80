"""The one door every patch comes in through.

Every intake path (the CLI, the inbox folder, the hooks, a ref update) ends
in `submit`, which records the submission durably before it returns: the
patch bytes content-addressed on disk (fsynced), then a row in the state DB.
The same patch (same patch id) for the same target collapses into the
existing submission. A patch that cannot even be parsed is recorded too,
already rejected with its reason, so nothing a user sent goes unanswered.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygit2

from errauto_daemon import config as config_mod
from errauto_daemon import patchfile
from errauto_daemon.errors import FatalError, PatchRejected
from errauto_daemon.store import Store, Submission, store_patch_bytes
from errauto_daemon.workspace import repo_root

SOURCES = ("cli", "inbox", "pre-commit", "post-receive", "ref", "hook")


@dataclass(frozen=True)
class SubmitResult:
    submission: Submission
    created: bool  # False: a duplicate of `submission`


def open_repo(path: str | Path) -> pygit2.Repository:
    found = pygit2.discover_repository(str(path))
    if found is None:
        raise FatalError(f"not a git repository: {path}")
    return pygit2.Repository(found)


def submit(
    store: Store,
    repo_dir: str | Path,
    data: bytes,
    *,
    source: str,
    name: str,
    note: str | None = None,
    target: str | None = None,
    title: str | None = None,
) -> SubmitResult:
    repo = open_repo(repo_dir)
    config = config_mod.load(repo, target)
    sha = store_patch_bytes(data)
    tip = repo.references[config.target_ref].peel(pygit2.Commit)
    state, reason = "queued", None
    try:
        patch = patchfile.parse(data, name, limits=config.limits(), exists=lambda p: p in tip.tree)
        dedup = "patch-id:" + patch.patch_id()
        found_title, author = patch.title, patch.author
    except PatchRejected as exc:
        dedup = "sha256:" + sha
        found_title, author = patchfile.title_from_filename(name), None
        state, reason = "rejected", exc.reason
    submission, created = store.insert_submission(
        repo=repo_root(repo), target=config.target, source=source, source_detail=name,
        title=title or found_title, author=author, note=note, patch_sha256=sha, dedup_key=dedup,
        state=state, reason=reason,
    )
    if not created and reopens(submission):
        # Sent again after errauto itself turned it down (did not apply,
        # failed): try again; the target may have changed. A person's
        # rejection stands.
        if store.requeue(submission.id, f"resubmitted ({source})", expect=("rejected", "failed")):
            submission = store.get(submission.id)
    return SubmitResult(submission, created)


def reopens(sub: Submission) -> bool:
    """Whether sending this submission's patch again validates it again."""
    return sub.state == "failed" or (sub.state == "rejected" and sub.route == "rejected")
