"""How other processes reach the daemon and see it: the wake FIFO it reads, and `daemon status`.

Their side of both is light and lives in `presence.py` (`wake`,
`running_pid`, whether a heartbeat is fresh).
"""
from __future__ import annotations

import os
import select
import stat
import threading
import time
from typing import Any

from errauto_daemon import paths
from errauto_daemon.domain import State
from errauto_daemon.presence import heartbeat_fresh, running_pid
from errauto_daemon.store import Store


def wake_loop(*, stopping: threading.Event, wakeup: threading.Event) -> None:
    """Read the wake FIFO until stopping; every byte written there (`errauto submit`) sets `wakeup`."""
    path = paths.wake_fifo()
    if path.exists() and not stat.S_ISFIFO(path.lstat().st_mode):
        path.unlink()
    if not path.exists():
        os.mkfifo(path, 0o600)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while not stopping.is_set():
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if data:
                wakeup.set()
            else:
                # Every writer closed: reopen, or select keeps returning at once.
                os.close(fd)
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    finally:
        os.close(fd)


def daemon_status() -> dict[str, Any]:
    """What `errauto daemon status` shows: whether one runs and is alive, what it watches and does."""
    store = Store()
    pid = running_pid()
    row = store.daemon_row()
    now = time.time()
    in_flight = [
        {"id": s.id, "title": s.title, "since": round(now - s.updated_at, 1)}
        for s in store.submissions((State.VALIDATING,), limit=100)
    ]
    alive = pid is not None and row is not None and heartbeat_fresh(row["heartbeat_at"], now=now)
    return {
        "running": pid is not None,
        "alive": alive,
        "pid": pid,
        "uptime": round(now - row["started_at"], 1) if row and pid else None,
        "heartbeat_age": round(now - row["heartbeat_at"], 1) if row else None,
        "repos": store.repos(),
        "queued": store.count((State.QUEUED,)),
        "in_flight": in_flight,
    }
