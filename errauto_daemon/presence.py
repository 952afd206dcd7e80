"""Whether an errauto daemon runs and is alive, and waking it; all without importing it.

Light on purpose: git hooks and `errauto submit` use these on every run.
Whether one runs, the lock decides, not a pid: a pid in a file may have been
reused. Whether it is alive, its heartbeat does: the daemon writes one every
`HEARTBEAT_EVERY` seconds, and one older than `ALIVE_WITHIN` means it hangs.
"""
from __future__ import annotations

import os
from pathlib import Path

from errauto_daemon import paths
from errauto_daemon.errors import FatalError
from errauto_daemon.locks import FileLock

HEARTBEAT_EVERY = 2.0  # seconds between the daemon's heartbeats
ALIVE_WITHIN = 15.0  # a heartbeat older than this (seconds) means the daemon is not alive


def heartbeat_fresh(heartbeat_at: float, *, now: float, within: float = ALIVE_WITHIN) -> bool:
    """Whether a heartbeat written at `heartbeat_at` says the daemon is alive at `now`.

    `within` is the monitor's configured warning threshold where it has one.
    """
    return max(0.0, now - heartbeat_at) < within


def running_pid() -> int | None:
    """The pid of the running daemon, or None. Decided by the lock, not the pid."""
    path = paths.daemon_lock()
    if not path.exists():
        return None
    probe = FileLock(path)
    if probe.acquire():
        probe.release()  # nobody held it
        return None
    return _pid_in(path)


def _pid_in(path: Path) -> int:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        text = ""
    return int(text) if text.isdigit() else -1


def wake() -> bool:
    """Nudge a running daemon to look at the queue now. False if none listens."""
    path = paths.wake_fifo()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except (FileNotFoundError, OSError):
        return False  # ENXIO: no reader, so no daemon
    try:
        os.write(fd, b"!")
    except OSError:
        pass  # the pipe is full: the daemon has wake-ups pending anyway
    finally:
        os.close(fd)
    return True


class DaemonLock:
    """The daemon's flock on daemon.lock, held for its whole life."""

    def __init__(self) -> None:
        self._lock: FileLock | None = None

    def acquire(self) -> None:
        lock = FileLock(paths.daemon_lock())
        if not lock.acquire():
            pid = _pid_in(lock.path)
            raise FatalError(f"an errauto daemon is already running (pid {pid if pid > 0 else '?'})")
        os.ftruncate(lock.fd, 0)
        os.pwrite(lock.fd, f"{os.getpid()}\n".encode(), 0)
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            os.ftruncate(self._lock.fd, 0)
            self._lock.release()
            self._lock = None
