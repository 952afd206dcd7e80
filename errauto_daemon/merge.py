"""Merging a validated patch into the target branch: the one owner of ref moves.

A merge commits the validated tree(s) on the exact base they were validated
on, then moves the target ref with compare-and-swap (`git update-ref NEW
OLD`). If the ref moved in the meantime nothing is written and the caller
validates again on the new tip: a combination that was not validated is
never merged.

Where the target branch is checked out in a non-bare work tree (the main
one or any linked worktree), the merge behaves like `git merge --ff-only`
there: `git read-tree -m -u OLD NEW` moves index and files for the changed
paths only, and refuses if local changes would be overwritten. That runs
before the ref moves, so a ref never moves under a stale working tree; the
merge is held with git's reason instead.

With `push = "<remote>"` the new commit is pushed first, fast-forward only.
A refused push is judged by the remote's tip, fetched afterwards: if the
remote moved, fast-forward the local target to it and let the caller
validate again; if not, the merge is held with the remote's reason.

Merges into one target are serialised by a lock file in the state dir.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pygit2

from errauto_daemon import git, locks, paths
from errauto_daemon.config import Config
from errauto_daemon.domain import StrEnum
from errauto_daemon.errors import strip_controls, without_controls
from errauto_daemon.openfiles import being_written
from errauto_daemon.patchfile import PatchCommit, author_time
from errauto_daemon.repo import common_dir


class MergeStatus(StrEnum):
    MERGED = "merged"  # the target moved to the new commit
    MOVED = "moved"  # the target was not where the patch was validated: validate again
    HELD = "held"  # could not merge, for a reason a person must look at


@dataclass(frozen=True)
class MergeOutcome:
    status: MergeStatus
    commit: str | None = None  # merged: the new tip
    tip: str | None = None  # moved: the target's new tip, to validate on
    reason: str = ""


def committer(repo: pygit2.Repository) -> pygit2.Signature:
    try:
        return repo.default_signature
    except (KeyError, pygit2.GitError):
        return pygit2.Signature("errauto", "errauto@localhost")


def build_commits(
    repo: pygit2.Repository,
    base: pygit2.Oid,
    commits: Sequence[PatchCommit],
    trees: Sequence[pygit2.Oid],
    *,
    submission_id: int,
    fallback_message: str,
) -> pygit2.Oid:
    """Create one commit per patch commit, chained on `base`; returns the last."""
    who = committer(repo)
    parent = base
    for commit, tree in zip(commits, trees, strict=True):
        author = _author(commit, who)
        # The patch's words, without what would drive a terminal showing `git log`.
        message = strip_controls(commit.message if commit.message.strip() else fallback_message)
        message = message.rstrip("\n") + f"\n\nErrauto-Submission: {submission_id}\n"
        parent = repo.create_commit(None, author, who, message, tree, [parent])
    return parent


def _author(commit: PatchCommit, who: pygit2.Signature) -> pygit2.Signature:
    """The mail's author, with no control characters: `git log` prints it raw.

    git itself accepts an ESC in a name; what is left after removing them is
    kept, and an author that is nothing but control characters is the committer.
    """
    name = without_controls(commit.author_name or "")
    email = without_controls(commit.author_email or "").replace(" ", "")
    if not name and not email:
        return who
    when = author_time(commit.author_date)
    name = name or email
    return pygit2.Signature(name, email, when[0], when[1]) if when else pygit2.Signature(name, email)


def pushed_tip(repo: pygit2.Repository, base: str, commits: Sequence[PatchCommit],
               trees: Sequence[pygit2.Oid]) -> pygit2.Oid | None:
    """The commits the patch was made from, when landing them is landing what was validated.

    Each mail of a pushed series names its commit (`From <id>`). That is only
    a claim, so it is checked against the objects in this repository: every
    named commit must exist, have exactly one parent, the previous one (the
    first: the validated base), and the very tree errauto validated for it.
    Then the target can move to the last one by fast-forward, keeping the
    pusher's commits as they are. Anything else: None, and errauto builds
    its own commits.
    """
    if not commits or len(commits) != len(trees):
        return None
    parent = pygit2.Oid(hex=base)
    for commit, tree in zip(commits, trees, strict=True):
        if commit.commit_id is None:
            return None
        try:
            found = repo.get(commit.commit_id)
        except ValueError:
            return None
        if not isinstance(found, pygit2.Commit) or found.parent_ids != [parent] or found.tree_id != tree:
            return None
        parent = found.id
    return parent


def replaced(repo: pygit2.Repository, commits: Sequence[PatchCommit], new: pygit2.Oid) -> list[tuple[str, str]]:
    """(named commit, errauto's commit) for each mail that named a commit in this repository.

    `new` is the last of the commits `build_commits` chained, one per mail.
    """
    built: list[str] = []
    current = new
    for _ in commits:
        built.append(str(current))
        parents = repo[current].peel(pygit2.Commit).parent_ids
        if not parents:
            break
        current = parents[0]
    built.reverse()
    out: list[tuple[str, str]] = []
    for commit, mine in zip(commits, built):  # `built` is short when history ends first
        if commit.commit_id is None:
            continue
        try:
            found = repo.get(commit.commit_id)
        except ValueError:
            continue
        if isinstance(found, pygit2.Commit) and str(found.id) != mine:
            out.append((str(found.id), mine))
    return out


NOTES_REF = "refs/notes/errauto"


def _note(repo: pygit2.Repository, commit: str, submission_id: int) -> None:
    """`Errauto-Submission: <id>` as a note on the merged tip (no trailer needed)."""
    who = committer(repo)
    repo.create_note(f"Errauto-Submission: {submission_id}\n", who, who, commit, NOTES_REF, True)


def _key(repo: pygit2.Repository, ref: str) -> str:
    return hashlib.sha256(f"{common_dir(repo)}\0{ref}".encode()).hexdigest()[:16]


@contextmanager
def target_lock(repo: pygit2.Repository, ref: str,
                across: AbstractContextManager[None] | None = None) -> Iterator[None]:
    """Serialise merges into one target; repair what a killed merge left first.

    Re-entrant within a thread: a validation that holds the lock (to merge
    next, see Validator._decide) still goes through `merge()`, which takes it.
    Other threads and processes wait. `across`: the same target's lock for
    every machine of a shared state (`carryout.merges_serial`), taken first.
    """
    with across or nullcontext(), \
            locks.reentrant(paths.locks_dir() / f"merge-{_key(repo, ref)}.lock") as taken:
        if taken:
            _repair(repo, ref)
        yield


def _journal(repo: pygit2.Repository, ref: str) -> Path:
    return paths.locks_dir() / f"merge-{_key(repo, ref)}.journal"


def _repair(repo: pygit2.Repository, ref: str) -> None:
    """Undo the half of a merge a killed process left behind.

    While errauto moves the target it keeps a journal (old, new, which
    checkouts). Finding one means the process died in between. Its lock
    files (`index.lock` of a checkout, the ref's `.lock`) are stale: we hold
    the merge lock, they were made within moments of the journal, and no
    process has them open. Files may have been moved while the index was
    not: unless the ref did move, errauto puts back exactly the files it
    changed (those whose content is the new version), leaving any edit of
    the user's alone.
    """
    journal = _journal(repo, ref)
    try:
        data = json.loads(journal.read_text())
    except FileNotFoundError:
        return
    except ValueError:
        journal.unlink()
        return
    old, new, started = data["old"], data["new"], float(data["started"])
    # `git update-ref` on a checked-out branch locks HEAD as well as the ref
    # (HEAD's reflog is written in the same transaction): a kill there leaves
    # both, and a HEAD.lock left behind stops every later merge and the
    # user's own commits.
    shared = Path(common_dir(repo))
    for lock in (shared / (ref + ".lock"), shared / "packed-refs.lock", shared / "HEAD.lock"):
        _remove_stale_lock(lock, started)
    current = repo.references.get(ref)
    completed = current is not None and str(current.target) == new
    for name in data["worktrees"]:
        worktree = Path(name)
        if not worktree.is_dir():
            continue
        gitdir = Path(git.output(("rev-parse", "--absolute-git-dir"), worktree))
        _remove_stale_lock(gitdir / "index.lock", started)
        _remove_stale_lock(gitdir / "HEAD.lock", started)
        if not completed:
            _put_back(worktree, old, new)
    journal.unlink()


def _remove_stale_lock(lock: Path, started: float) -> None:
    try:
        made = lock.stat().st_mtime
    except FileNotFoundError:
        return
    # Ours only if made during our merge (which takes seconds, not minutes)
    # and nobody holds it open: a lock a user's git took later is theirs.
    if started - 1 <= made <= started + 60 and being_written(lock) is False:
        lock.unlink(missing_ok=True)


def repair_all() -> int:
    """At daemon start: repair every merge a killed process left half-done."""
    repaired = 0
    for journal in paths.locks_dir().glob("merge-*.journal"):
        try:
            data = json.loads(journal.read_text())
            repo = pygit2.Repository(data["common_dir"])
        except (OSError, ValueError, KeyError, pygit2.GitError):
            journal.unlink(missing_ok=True)
            continue
        with target_lock(repo, data["ref"]):
            repaired += 1
    return repaired


def _put_back(worktree: Path, old: str, new: str) -> None:
    changed = [p for p in git.output(("diff", "--name-only", "-z", old, new), worktree).split("\0") if p]
    if not changed:
        return
    staged = {}
    listing = git.run(("ls-files", "-s", "-z", "--", *changed), worktree).stdout.decode("utf-8", "surrogateescape")
    for entry in listing.split("\0"):
        if entry:
            meta, path = entry.split("\t", 1)
            staged[path] = meta.split()[1]

    def blob(commit: str, path: str) -> str | None:
        proc = git.run(("rev-parse", "--verify", "-q", f"{commit}:{path}"), worktree, check=False)
        return proc.stdout.decode().strip() or None

    new_blobs = {p: blob(new, p) for p in changed}
    if all(staged.get(p) == new_blobs[p] for p in changed):
        # The index was written: read-tree finished. Move the checkout back.
        git.run(("read-tree", "-m", "-u", new, old), worktree, check=False)
        return
    restore: list[str] = []
    remove: list[str] = []
    for path in changed:
        full = worktree / path
        on_disk = None
        if full.is_file() and not full.is_symlink():
            on_disk = git.output(("hash-object", "--", path), worktree)
        if new_blobs[path] is not None and on_disk == new_blobs[path]:
            (restore if path in staged else remove).append(path)
        elif new_blobs[path] is None and not full.exists() and path in staged:
            restore.append(path)
    for path in remove:
        (worktree / path).unlink()
    if restore:
        git.run(("checkout-index", "-f", "--", *restore), worktree, check=False)
    git.run(("update-index", "-q", "--refresh"), worktree, check=False)


def checkouts_of(repo: pygit2.Repository, ref: str) -> list[Path]:
    """Non-bare work trees (main and linked) that have `ref` checked out."""
    out = git.output(("worktree", "list", "--porcelain"), common_dir(repo))
    found: list[Path] = []
    current: dict[str, str] = {}
    for line in out.splitlines() + [""]:
        if not line:
            if current.get("branch") == ref and "bare" not in current and "worktree" in current:
                found.append(Path(current["worktree"]))
            current = {}
            continue
        key, _, value = line.partition(" ")
        current[key] = value
    return found


def _read_tree(worktree: Path, old: str, new: str, *, dry_run: bool) -> str | None:
    """Move a checkout from `old` to `new` like a fast-forward; None or the reason not.

    `read-tree -m -u` checks every path before it writes any, so a refusal
    leaves the checkout as it was. Its up-to-date test trusts the index's
    stat data: when it refuses, refresh the index (as `git merge` does up
    front) and ask once more, so a merely touched file does not hold a merge.
    """
    args = ["read-tree", "-m", "-u"] + (["-n"] if dry_run else []) + [old, new]
    proc = git.run(args, worktree, check=False)
    if proc.returncode != 0:
        git.run(("update-index", "-q", "--refresh"), worktree, check=False)
        proc = git.run(args, worktree, check=False)
    if proc.returncode == 0:
        return None
    lines = [l.strip() for l in proc.stderr.decode("utf-8", "replace").splitlines() if l.strip()]
    detail = "; ".join(l.removeprefix("error: ").removeprefix("fatal: ") for l in lines[:3])
    return f"the target is checked out in {worktree} and {detail or 'git read-tree refused'}"


def fast_forward(repo: pygit2.Repository, config: Config, old: str, new: str, message: str) -> MergeOutcome:
    """Move the local target from `old` to `new` (a descendant), with its checkouts."""
    ref = config.target_ref
    current = repo.references.get(ref)
    if current is None or str(current.target) != old:
        return MergeOutcome(MergeStatus.MOVED, tip=str(current.target) if current else None)
    trees = checkouts_of(repo, ref)
    journal = _journal(repo, ref)
    _write_journal(journal, {"common_dir": common_dir(repo), "ref": ref, "old": old, "new": new,
                             "worktrees": [str(t) for t in trees], "started": time.time()})
    moved: list[Path] = []
    for worktree in trees:
        reason = _read_tree(worktree, old, new, dry_run=False)
        if reason:
            _undo(moved, old, new)
            journal.unlink(missing_ok=True)
            return MergeOutcome(MergeStatus.HELD, reason=reason)
        moved.append(worktree)
    proc = git.run(("update-ref", "-m", message, ref, new, old), common_dir(repo), check=False)
    if proc.returncode != 0:
        _undo(moved, old, new)
        journal.unlink(missing_ok=True)
        tip = repo.references.get(ref)
        if tip is not None and str(tip.target) == old:
            # The ref did not move: git could not lock it (someone's git is
            # running, or a lock was left behind). Validating again would
            # not help; say what git said.
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = lines[0].removeprefix("fatal: ").removeprefix("error: ") if lines else f"exit {proc.returncode}"
            return MergeOutcome(MergeStatus.HELD, reason=f"could not move {ref}: {detail}")
        return MergeOutcome(MergeStatus.MOVED, tip=str(tip.target) if tip else None)
    journal.unlink(missing_ok=True)
    return MergeOutcome(MergeStatus.MERGED, commit=new)


def _write_journal(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _undo(moved: Sequence[Path], old: str, new: str) -> None:
    for worktree in moved:
        git.run(("read-tree", "-m", "-u", new, old), worktree, check=False)


def merge(repo: pygit2.Repository, config: Config, base: str, new: str, message: str, *,
          submission_id: int | None = None, across: AbstractContextManager[None] | None = None) -> MergeOutcome:
    """Make `new` (a commit whose first parent chain reaches `base`) the target's tip.

    With `submission_id`, the merged tip gets its note in `refs/notes/errauto`.
    `across`: see `target_lock`.
    """
    with target_lock(repo, config.target_ref, across):
        outcome = _merge_locked(repo, config, base, new, message)
        if outcome.status == MergeStatus.MERGED and submission_id is not None:
            try:
                _note(repo, new, submission_id)
            except pygit2.GitError:
                pass  # the link is also in errauto's records (merged_commit)
        return outcome


def _merge_locked(repo: pygit2.Repository, config: Config, base: str, new: str, message: str) -> MergeOutcome:
    current = repo.references.get(config.target_ref)
    if current is None or str(current.target) != base:
        return MergeOutcome(MergeStatus.MOVED, tip=str(current.target) if current else None)
    if config.push:
        # Nothing may be pushed that the local checkouts could not follow.
        for worktree in checkouts_of(repo, config.target_ref):
            reason = _read_tree(worktree, base, new, dry_run=True)
            if reason:
                return MergeOutcome(MergeStatus.HELD, reason=reason)
        pushed = _push(repo, config, base, new)
        if pushed is not None:
            return pushed
    outcome = fast_forward(repo, config, base, new, message)
    if outcome.status != MergeStatus.MERGED and config.push:
        # The remote already has it: the merge happened; the local branch
        # just could not follow (moved, or local changes in the way).
        return MergeOutcome(MergeStatus.MERGED, commit=new,
                            reason=f"pushed to {config.push}; local {config.target} did not follow: "
                                   f"{outcome.reason or 'it moved'}")
    return outcome


def remote_tip(repo: pygit2.Repository, config: Config) -> str | None:
    """The target's tip on the push remote (fetched now), or None if unreachable."""
    assert config.push is not None
    try:
        return git.fetch(common_dir(repo), config.push, config.target_ref)
    except git.FetchFailed:
        return None


def follow_remote(repo: pygit2.Repository, config: Config) -> None:
    """Bring the local target up to the push remote's (a fetch, then a fast-forward), so that a
    validation starts from what the remote has: on a shared state other machines merge there.
    A local target that is not behind (ahead, diverged, unreachable remote) is left as it is: the
    push says what to do then."""
    tip = remote_tip(repo, config)
    if tip is None:
        return
    with target_lock(repo, config.target_ref):
        local = repo.references.get(config.target_ref)
        if local is None or str(local.target) == tip:
            return
        if repo.descendant_of(pygit2.Oid(hex=tip), local.target):
            fast_forward(repo, config, str(local.target), tip, f"errauto: fast-forward to {config.push}")


# A push the remote refused while another push held the ref's lock: worth sending again shortly.
_LOCK_WORDS = ("cannot lock ref", "Unable to create", "unable to lock", "failed to update ref")
PUSH_ATTEMPTS = 3


def _push(repo: pygit2.Repository, config: Config, base: str, new: str) -> MergeOutcome | None:
    """Push `new` as the remote's target, fast-forward only; None when it landed.

    A refused push is judged by the remote's tip, fetched afterwards, not by
    git's wording: the remote may have moved under a plain rejection or under
    a "[remote rejected] ... failed to update ref" (another errauto's push
    landed while this one was being checked). Moved ahead: catch up and
    validate again. Still at `base`: refused for a reason of its own (a hook,
    permissions), or a lock another push holds, which is tried again."""
    remote = config.push
    assert remote is not None
    cwd = common_dir(repo)
    for attempt in range(PUSH_ATTEMPTS):
        proc = git.run(("push", "--porcelain", remote, f"{new}:{config.target_ref}"), cwd, check=False)
        if proc.returncode == 0:
            return None
        text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        tip = remote_tip(repo, config)
        if tip is None:
            return MergeOutcome(MergeStatus.HELD, reason=f"push to {remote} failed and fetching it failed: "
                                                         f"{_why(text, proc.returncode)}")
        if tip == new:
            return None  # it landed after all
        if tip != base:
            return _caught_up(repo, config, base, tip)
        if not any(word in text for word in _LOCK_WORDS) or attempt == PUSH_ATTEMPTS - 1:
            return MergeOutcome(MergeStatus.HELD, reason=f"push to {remote} was refused: {_why(text, proc.returncode)}")
        time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _why(text: str, code: int) -> str:
    """The line of a failed push's output that says why: the refused ref's, else the last."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    refused = [line for line in lines if line.startswith("!")]
    return (refused or lines or [f"exit {code}"])[-1][:200]


def _caught_up(repo: pygit2.Repository, config: Config, base: str, tip: str) -> MergeOutcome:
    """The remote moved from `base` to `tip`: follow it locally, so the caller validates again there."""
    remote = config.push
    if not repo.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=base)):
        return MergeOutcome(MergeStatus.HELD, reason=f"{config.target} and {remote}/{config.target} have diverged")
    caught_up = fast_forward(repo, config, base, tip, f"errauto: fast-forward to {remote}")
    if caught_up.status == MergeStatus.HELD:
        return caught_up
    return MergeOutcome(MergeStatus.MOVED, tip=tip, reason=f"{remote} moved")
