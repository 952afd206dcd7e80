"""Exclusive file locks (flock): the one way errauto takes a lock.

A flock dies with the process holding it, which is why errauto uses it
wherever "is somebody still working on this?" must have a true answer: the
daemon, a slot of the worktree pool, a claimed submission, the outbox, a
merge into one target. Threads of one process exclude each other too, as
each `FileLock` opens the file on its own.
"""
from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType


class FileLock:
    """An exclusive flock on `path`, created (mode 0600) if missing.

    A lock file may be deleted by its holder (`Pool.prune`, `Store.hold` do):
    a lock taken on a file that is no longer at `path` guards nothing, so it
    is taken again on the file that is. As a context manager it waits for
    the lock; `acquire()` does not unless asked to.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def fd(self) -> int:
        """The open lock file, for a holder that keeps something in it (the daemon's pid)."""
        if self._fd is None:
            raise RuntimeError(f"lock not held: {self.path}")
        return self._fd

    def acquire(self, *, blocking: bool = False) -> bool:
        """Take the lock: False if another holds it (and not `blocking`). True if already ours."""
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return False
                raise
            if _still_at(fd, self.path):
                self._fd = fd
            else:
                os.close(fd)
        return True

    def release(self) -> None:
        """Let go (closing the file releases the flock); nothing if not held."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire(blocking=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def _still_at(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


_this_thread = threading.local()  # the paths whose reentrant() lock this thread holds


@contextmanager
def reentrant(path: Path) -> Iterator[bool]:
    """The lock on `path`, waited for, but re-entrant within one thread.

    Yields True to the call that took it, False to a nested call of the
    same thread (which then holds nothing of its own). Other threads and
    processes wait for the outermost call to end.
    """
    held: set[Path] = getattr(_this_thread, "paths", set())
    _this_thread.paths = held
    if path in held:
        yield False
        return
    with FileLock(path):
        held.add(path)
        try:
            yield True
        finally:
            held.discard(path)
