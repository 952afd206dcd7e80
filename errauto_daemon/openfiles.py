"""Whether another process has a file open for writing (locks are in `locks`)."""
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

