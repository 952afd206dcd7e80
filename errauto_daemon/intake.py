"""The one door every patch comes in through.

Every intake path (the CLI, the inbox folder, the hooks, a ref update) ends
in `submit`, which records the submission durably before it returns: the
patch bytes content-addressed on disk (fsynced), then a row in the state DB.
The same patch (same patch id) for the same target collapses into the
existing submission. A patch that cannot even be parsed is recorded too,
already rejected with its reason, so nothing a user sent goes unanswered.

A file name is recorded as text: bytes that are not UTF-8 (a name such as
`a-\\xff.patch`) are written as `\\xNN` escapes and a backslash as `\\\\`, so the
stored name is printable and `original_name` gives the exact name back.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from errauto_daemon import config as config_mod
from errauto_daemon import jobs, patchfile
from errauto_daemon.config import Config
from errauto_daemon.domain import Route, State
from errauto_daemon.errors import PatchRejected
from errauto_daemon.repo import open_repo, remote_name, repo_root
from errauto_daemon.store import Store, Submission

SOURCES = ("cli", "inbox", "pre-commit", "post-commit", "post-receive", "ref", "hook")


@dataclass(frozen=True)
class SubmitResult:
    submission: Submission
    created: bool  # False: a duplicate of `submission`


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
    queue_job: bool = True,
) -> SubmitResult:
    """Record a patch for the repository at (or above) `repo_dir`. `queue_job`: False when the
    caller validates it at once (`errauto apply`): no job for another machine to take."""
    import pygit2

    repo = open_repo(repo_dir)
    config = config_mod.load(repo, target)
    tip = repo.references[config.target_ref].peel(pygit2.Commit)
    return record(store, repo_root(repo), config, data, source=source, name=name, note=note,
                  title=title, exists=lambda p: p in tip.tree, remote=remote_name(repo, config.push, config.remote_url),
                  queue_job=queue_job)


def record(
    store: Store,
    root: str,
    config: Config,
    data: bytes,
    *,
    source: str,
    name: str,
    note: str | None = None,
    title: str | None = None,
    exists: Callable[[str], bool] | None = None,
    remote: str | None = None,
    queue_job: bool = True,
) -> SubmitResult:
    """Record a patch whose repository and configuration the caller already has.

    `root` is how errauto names the repository on this machine (its work
    tree, or its git dir when bare), `remote` among machines (its push
    remote, `repo.remote_name`); `exists` tells plain unified diffs which
    strip level fits. On a database machines share, the submission's
    validation is queued as a job any of them may take (`jobs`).
    """
    name = recorded_name(name)
    sha = store.save_patch(data)
    state, reason = State.QUEUED, None
    try:
        patch = patchfile.parse_once(data, name, limits=config.limits(), exists=exists)
        dedup = "patch-id:" + patch.patch_id()
        found_title, author = patch.title, patch.author
    except PatchRejected as exc:
        dedup = "sha256:" + sha
        found_title, author = patchfile.title_from_filename(name), None
        state, reason = State.REJECTED, exc.reason
    submission, created = store.insert_submission(
        repo=root, target=config.target, source=source, source_detail=name,
        title=title or found_title, author=author, note=note, patch_sha256=sha, dedup_key=dedup,
        state=state, reason=reason, remote=remote,
    )
    if not created and reopens(submission):
        # Sent again after errauto itself turned it down (did not apply,
        # failed): try again; the target may have changed. A person's
        # rejection stands.
        if store.requeue(submission.id, f"resubmitted ({source})", expect=(State.REJECTED, State.FAILED)):
            submission = store.get(submission.id)
    if submission.state == State.QUEUED and store.shared and queue_job:
        jobs.enqueue(store, submission.id)
    return SubmitResult(submission, created)


def reopens(sub: Submission) -> bool:
    """Whether sending this submission's patch again validates it again."""
    return sub.state == State.FAILED or (sub.state == State.REJECTED and sub.route == Route.REJECTED)


_ESCAPED_BYTE = re.compile(r"\\\\|\\x([0-9a-f]{2})")


def recorded_name(name: str) -> str:
    """A file name (or path) as the store records it: printable UTF-8, reversible.

    Bytes the file system gave that are not UTF-8 arrive as surrogates
    (`os.fsdecode`); they become `\\xNN`, and a backslash `\\\\`.
    """
    if "\\" not in name and not any("\udc80" <= c <= "\udcff" for c in name):
        return name
    raw = name.encode("utf-8", "surrogateescape").replace(b"\\", b"\\\\")
    return raw.decode("utf-8", "backslashreplace")


def original_name(recorded: str) -> str:
    """The name `recorded_name` was given (as `os.fsdecode` spells it)."""
    if "\\" not in recorded:
        return recorded
    return _ESCAPED_BYTE.sub(lambda m: "\\" if m[1] is None else chr(0xDC00 + int(m[1], 16)), recorded)
