"""Files other processes hold: exclusive flocks, and files open for writing."""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path


def being_written(path: Path) -> bool | None:
    """Whether another process has the file open for writing; None if we cannot tell.

    On Linux a read lease is refused with EAGAIN exactly when someone has the
    file open for writing. Where leases are not available (other systems,
    files we do not own) the caller falls back to a quiet period.
    """
    setlease = getattr(fcntl, "F_SETLEASE", None)
    if setlease is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, setlease, fcntl.F_RDLCK)
    except OSError as exc:
        return True if exc.errno == errno.EAGAIN else None
    else:
        fcntl.fcntl(fd, setlease, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def try_lock(path: Path, *, blocking: bool = False) -> int | None:
    """An exclusive flock on `path` (created if missing): its fd, or None if held elsewhere.

    A flock dies with the process holding it, which is why errauto uses it
    wherever "is somebody still working on this?" must have a true answer.
    Close the fd to release the lock. A lock file may be deleted by its
    holder (`Pool.prune` does): a lock taken on a file that is no longer at
    `path` guards nothing, so it is taken again on the file that is.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
