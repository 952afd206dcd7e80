"""The inbox folder: patch files dropped in a repository's `patches/`.

A file is *taken* when it is complete: renamed into the folder, closed after
writing, or (on a rescan) left untouched for a quiet period. Dotfiles and
files without a patch suffix are never taken; an editor's or downloader's
temporary file is taken once it is renamed to `*.patch`.

Taking a file submits it (durably recorded before anything else happens),
then *moves* it, never deletes it, into a subfolder that shows its fate,
named with its submission id:

    patches/queued/12-fix.patch          waiting or being validated
    patches/merged/12-fix.patch
    patches/pull-requests/12-fix.patch
    patches/review/12-fix.patch          held for a person
    patches/rejected/12-fix.patch        with 12-fix.patch.reason.txt beside it
    patches/failed/12-fix.patch          with its reason, too
    patches/duplicates/12-fix.patch      the same patch as submission 12

Every file taken for a submission that is not yet decided is recorded in
the store (`inbox_files`), whatever the submission's source: the same patch
may have come first through `errauto apply` or `submit`. `settle` is the one
owner of a taken file's fate: whoever decides a submission (a daemon worker,
`apply`, `queue approve / reject / retry / process`, a pull request merged or
closed on GitHub) calls it, and every file recorded for the submission moves
to the folder of its state. A file taken for a submission already decided
goes to `duplicates/` and stays there. Subfolders are not watched, so moving
a file there never looks like a new drop.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
import time
from pathlib import Path

from errauto_daemon import config as config_mod
from errauto_daemon import intake
from errauto_daemon.domain import State
from errauto_daemon.errors import FatalError
from errauto_daemon.intake import original_name, recorded_name
from errauto_daemon.openfiles import being_written
from errauto_daemon.patchfile import SUFFIXES
from errauto_daemon.repo import open_repo
from errauto_daemon.store import DECIDED, Store, Submission
from errauto_daemon.store.sources import machine_name

log = logging.getLogger("errauto.inbox")

QUIET = 5.0  # seconds without a change before a rescan takes a file
FATE = {
    State.QUEUED: "queued",
    State.VALIDATING: "queued",
    State.MERGED: "merged",
    State.PR_OPEN: "pull-requests",
    State.AWAITING_REVIEW: "review",
    State.REJECTED: "rejected",
    State.FAILED: "failed",
}
MAX_READ = 64 * 1024 * 1024
NAME_MAX = 255  # bytes in a file name, on every file system errauto runs on


def inbox_dir(repo_root: str) -> Path | None:
    """The repository's inbox folder, or None (a bare repository has none)."""
    repo = open_repo(repo_root)
    if repo.is_bare:
        return None
    try:
        config = config_mod.load(repo)
    except FatalError as exc:
        log.warning("%s: %s", repo_root, exc)
        return None
    return Path(repo_root) / config.inbox


def ensure_inbox(repo_root: str) -> Path | None:
    """Create the inbox folder, kept out of git by .git/info/exclude."""
    folder = inbox_dir(repo_root)
    if folder is None:
        return None
    # The fate folders exist before the folder is watched: a move into a
    # folder that is not yet watched cannot be paired with its source.
    for sub in (*FATE.values(), "duplicates"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    repo = open_repo(repo_root)
    try:
        relative = folder.resolve().relative_to(Path(repo_root).resolve()).as_posix()
    except ValueError:
        return folder  # outside the work tree: nothing to exclude
    exclude = Path(repo.path) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    existing = exclude.read_text() if exclude.exists() else ""
    line = f"/{relative}/"
    if line not in existing.split():
        with exclude.open("a") as fh:
            fh.write(("" if existing.endswith("\n") or not existing else "\n") + line + "\n")
    return folder


def is_candidate(path: Path) -> bool:
    name = path.name
    return not name.startswith(".") and name.lower().endswith(SUFFIXES)


def take(store: Store, repo_root: str, path: Path) -> Submission | None:
    """Submit a dropped file and move it to the folder of its fate.

    An entry that cannot be taken (not a regular file, unreadable) is set
    aside in `rejected/` with its reason and an alert, before anything is
    recorded for it.
    """
    if not is_candidate(path):
        return None
    try:
        data = _read(path)
    except _NotTaken as exc:
        set_aside(store, repo_root, path, exc.reason)
        return None
    if data is None:
        return None
    inbox = path.parent
    result = intake.submit(store, repo_root, data, source="inbox", name=path.name)
    sub = result.submission
    if result.created or sub.state not in DECIDED:
        dest = _move(path, inbox / FATE[sub.state] / _fate_name(sub.id, path.name))
        if sub.state in (State.REJECTED, State.FAILED):
            _write_reason(dest, sub.reason or sub.state)
        store.add_inbox_file(sub.id, sub.repo, recorded_name(str(dest.absolute())))
        # Decided while the file was being moved (a worker was quicker than
        # the record above): its decider did not know of this file yet.
        sub = store.get(sub.id)
        settle(store, sub)
    else:
        dest = _move(path, inbox / "duplicates" / _fate_name(sub.id, path.name))
        _write_reason(dest, f"the same patch as submission {sub.id} ({sub.state}): {sub.title}")
    log.info("took %s as submission %d (%s)", recorded_name(path.name), sub.id, sub.state)
    return sub


def set_aside(store: Store, repo_root: str, path: Path, reason: str) -> None:
    """Move an entry that cannot be taken to `rejected/`, with its reason, and alert.

    Nothing is recorded for it as a submission. An entry that cannot even be
    moved stays where it is; it is alerted once per process.
    """
    shown = recorded_name(path.name)
    try:
        dest = _move(path, path.parent / "rejected" / path.name)
        _write_reason(dest, reason)
    except FileNotFoundError:
        return  # taken or removed meanwhile
    except OSError as exc:
        key = (repo_root, shown, reason)
        if key in _stuck:
            return
        _stuck.add(key)
        reason = f"{reason}; it cannot be moved to rejected/ either ({exc.strerror or exc})"
    log.warning("%s: %s not taken: %s", repo_root, shown, reason)
    store.add_alert("inbox_skipped", f"{shown} in the inbox of {repo_root} was not taken: {reason}",
                    {"repo": repo_root, "file": shown})


_stuck: set[tuple[str, str, str]] = set()  # entries left in place, alerted once


def settle(store: Store, sub: Submission) -> None:
    """Move every inbox file taken for `sub` to the folder of its state.

    Safe to call at any time, from any process, as often as wanted: a file
    already in place stays, one moved or removed meanwhile is left alone. A
    file that cannot be moved is logged, never raised: the decision stands.
    """
    files = store.inbox_files(sub.id)
    if not files:
        _adopt_unrecorded(store, sub)
        files = store.inbox_files(sub.id)
    if files and store.shared:  # another machine's files are its own to move (`settle_waiting`, there)
        me = machine_name()
        files = [f for f in files if f.machine in (None, me)]
    for taken in files:
        current = Path(original_name(taken.path))
        dest = current.parent.parent / FATE[sub.state] / current.name
        try:
            if dest != current:
                try:
                    dest = _move(current, dest)
                except FileNotFoundError:
                    continue  # settled by another process just now, or removed by someone
                store.inbox_file_moved(taken.id, recorded_name(str(dest)))
                current.with_name(current.name + ".reason.txt").unlink(missing_ok=True)
            if sub.state in (State.REJECTED, State.FAILED) and dest.exists():
                _write_reason(dest, sub.reason or sub.state)
        except OSError as exc:
            log.warning("submission %d: cannot move %s to %s/: %s", sub.id, recorded_name(str(current)),
                        dest.parent.name, exc)


def settle_waiting(store: Store) -> int:
    """Settle this machine's inbox files of submissions decided elsewhere (another machine sharing
    the state decided them, and left these files waiting in `queued/`); how many submissions."""
    waiting = store.waiting_inbox_files(FATE[State.QUEUED])
    for sub_id in waiting:
        settle(store, store.get(sub_id))
    return len(waiting)


def _adopt_unrecorded(store: Store, sub: Submission) -> None:
    """Record the file of an inbox submission taken before files were recorded.

    Such a file is named after the submission; look for it in every fate folder.
    """
    if sub.source != "inbox" or not sub.source_detail:
        return
    try:
        root = inbox_dir(sub.repo)
    except FatalError:
        return  # the repository is gone
    if root is None:
        return
    name = _fate_name(sub.id, original_name(sub.source_detail))
    for folder in sorted(set(FATE.values())):
        current = root / folder / name
        if current.exists():
            store.add_inbox_file(sub.id, sub.repo, recorded_name(str(current.absolute())))
            return


def scan(store: Store, repo_root: str, *, quiet: float = QUIET) -> list[Submission]:
    """Take every complete file in the inbox (at start, and periodically)."""
    root = inbox_dir(repo_root)
    if root is None or not root.is_dir():
        return []
    taken = []
    now = time.time()
    for path in sorted(root.iterdir()):
        if not is_candidate(path):
            continue
        writing = being_written(path)
        if writing:
            continue  # a slow writer paused: its close event takes it
        try:
            if writing is None and now - path.lstat().st_mtime < quiet:
                continue  # cannot tell; a close event or the next scan takes it
        except FileNotFoundError:
            continue
        try:
            sub = take(store, repo_root, path)
        except OSError as exc:
            # One entry must not stop the scan: the rest of the folder is taken.
            set_aside(store, repo_root, path, f"cannot be taken: {exc.strerror or exc}")
            continue
        if sub is not None:
            taken.append(sub)
    return taken


class _NotTaken(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _read(path: Path) -> bytes | None:
    """The file's bytes; None if it is gone. _NotTaken for what is not a readable regular file.

    Opened without following a link and without waiting for a writer (a FIFO
    put in its place), and checked on the open file, so nothing can be
    swapped in between the check and the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise _NotTaken("not a regular file (symlinks are not followed)") from None
        raise _NotTaken(f"cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _NotTaken("not a regular file (symlinks are not followed)")
    with os.fdopen(fd, "rb") as fh:
        try:
            os.set_blocking(fd, True)
            return fh.read(MAX_READ)
        except OSError as exc:
            raise _NotTaken(f"cannot be read: {exc.strerror or exc}") from None


def _fate_name(sub_id: int, name: str) -> str:
    """`<id>-<name>`, shortened in its middle to what a file system takes (255 bytes)."""
    full = f"{sub_id}-{name}"
    raw = os.fsencode(full)
    if len(raw) <= NAME_MAX:
        return full
    suffix = os.fsencode(Path(name).suffix)[-32:]
    head = raw[:NAME_MAX - len(suffix) - 3]
    return os.fsdecode(head + b"..." + suffix)


def _move(path: Path, dest: Path) -> Path:
    """Move `path` to `dest`, or beside it when taken; returns where it went."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest = dest.with_name(f"{dest.stem}.{int(time.time() * 1000)}{dest.suffix}")
    os.replace(path, dest)
    return dest


def _write_reason(path: Path, reason: str) -> None:
    path.with_name(path.name + ".reason.txt").write_text(reason.rstrip("\n") + "\n")
