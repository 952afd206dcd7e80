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

`settle` moves a file on when its submission is decided. Subfolders are
not watched, so moving a file there never looks like a new drop.
"""
from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

from errauto_daemon import config as config_mod
from errauto_daemon import intake
from errauto_daemon.errors import FatalError
from errauto_daemon.openfiles import being_written
from errauto_daemon.store import Store, Submission

log = logging.getLogger("errauto.inbox")

SUFFIXES = (".patch", ".diff", ".eml", ".mbox")
QUIET = 5.0  # seconds without a change before a rescan takes a file
FATE = {
    "queued": "queued",
    "validating": "queued",
    "merged": "merged",
    "pr_open": "pull-requests",
    "awaiting_review": "review",
    "rejected": "rejected",
    "failed": "failed",
}
MAX_READ = 64 * 1024 * 1024


def inbox_dir(repo_root: str) -> Path | None:
    """The repository's inbox folder, or None (a bare repository has none)."""
    repo = intake.open_repo(repo_root)
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
    repo = intake.open_repo(repo_root)
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
    """Submit a dropped file and move it to the folder of its fate."""
    if not is_candidate(path):
        return None
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None  # taken already (a close event and a rescan both saw it)
    inbox = path.parent
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        # Reading through a link could hand errauto any file its user can read.
        _move(path, inbox / "rejected" / path.name)
        _write_reason(inbox / "rejected" / path.name, "not a regular file (symlinks are not followed)")
        log.warning("%s is not a regular file; moved to rejected/", path)
        return None
    data = _read(path)
    if data is None:
        return None
    result = intake.submit(store, repo_root, data, source="inbox", name=path.name)
    sub = result.submission
    if result.created or sub.state == "queued":
        dest = inbox / FATE[sub.state] / f"{sub.id}-{path.name}"
    else:
        dest = inbox / "duplicates" / f"{sub.id}-{path.name}"
    _move(path, dest)
    if not result.created and sub.state != "queued":
        _write_reason(dest, f"the same patch as submission {sub.id} ({sub.state}): {sub.title}")
    elif sub.state in ("rejected", "failed"):
        _write_reason(dest, sub.reason or sub.state)
    log.info("took %s as submission %d (%s)", path.name, sub.id, sub.state)
    return sub


def settle(sub: Submission) -> None:
    """Move a decided submission's inbox file to the folder of its fate."""
    if sub.source != "inbox" or not sub.source_detail:
        return
    root = inbox_dir(sub.repo)
    if root is None:
        return
    name = f"{sub.id}-{sub.source_detail}"
    dest = root / FATE[sub.state] / name
    for folder in set(FATE.values()):
        current = root / folder / name
        if current != dest and current.exists():
            _move(current, dest)
            old_reason = current.with_name(current.name + ".reason.txt")
            if old_reason.exists():
                old_reason.unlink()
            break
    if sub.state in ("rejected", "failed") and dest.exists():
        _write_reason(dest, sub.reason or sub.state)


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
        sub = take(store, repo_root, path)
        if sub is not None:
            taken.append(sub)
    return taken


def _read(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as fh:
        return fh.read(MAX_READ)


def _move(path: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest = dest.with_name(f"{dest.stem}.{int(time.time() * 1000)}{dest.suffix}")
    os.replace(path, dest)


def _write_reason(path: Path, reason: str) -> None:
    path.with_name(path.name + ".reason.txt").write_text(reason.rstrip("\n") + "\n")
