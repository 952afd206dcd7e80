"""Whether the state database is still the file the daemon opened.

A state directory deleted (or its database replaced) under a running daemon
leaves it working on a file nobody else can see: what it records is lost at
the next start, `daemon status` finds no daemon, and a second daemon could
start beside it. So the daemon notes the database file's identity (device
and inode) when it starts, and looks again periodically and before each
piece of work; once it differs or the file is gone, the daemon takes no more
work and stops.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return None  # the directory itself is gone or unreadable: the same for the daemon
    return info.st_dev, info.st_ino


class StateGuard:
    """The state database's identity at start, and whether it still holds (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity = _identity(path)
        self._lost: str | None = None
        self._lock = threading.Lock()

    def intact(self) -> bool:
        """Whether the database at `path` is still the one the daemon opened; once not, never again."""
        with self._lock:
            if self._lost is None:
                now = _identity(self.path)
                if now != self._identity:
                    self._lost = "deleted" if now is None else "replaced by another file"
            return self._lost is None

    @property
    def lost(self) -> str | None:
        """What happened to the database ("deleted", "replaced by another file"), or None."""
        with self._lock:
            return self._lost
