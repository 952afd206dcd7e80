"""How other processes reach the daemon and see it: the wake FIFO it reads, and `daemon status`;
and how the daemon's process ends when a thread will not.

Their side of both is light and lives in `presence.py` (`wake`,
`running_pid`, whether a heartbeat is fresh).
"""
from __future__ import annotations

import logging
import os
import select
import stat
import threading
import time
from collections.abc import Iterable
from typing import Any, NoReturn

from errauto_daemon import checks, output, paths
from errauto_daemon.domain import State
from errauto_daemon.presence import heartbeat_fresh, running_pid
from errauto_daemon.store import Store, Worker


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
        {"id": s.id, "title": s.title, "since": round(now - s.updated_at, 1),
         "being_rejected": store.cancel_requested(s.id) is not None}
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
        "workers": [worker_json(w, now) for w in store.workers()],
    }


def worker_json(w: Worker, now: float) -> dict[str, Any]:
    """A daemon of the database as `daemon status` and `status` show it."""
    if w.stopped_at is not None:
        state = "stopped"
    else:
        state = "alive" if heartbeat_fresh(w.heartbeat_at, now=now) else "missing"
    return {"host": w.host, "home": w.home, "pid": w.pid, "version": w.version, "state": state,
            "heartbeat_age": round(now - w.heartbeat_at, 1), "uptime": round(now - w.started_at, 1),
            "slots": w.slots, "busy": w.busy}


def worker_lines(workers: list[dict[str, Any]]) -> list[str]:
    """The workers as lines of text, the missing first; nothing when no daemon ever used the database."""
    if not workers:
        return []
    order = {"missing": 0, "alive": 1, "stopped": 2}
    lines = [f"workers: {sum(w['state'] == 'alive' for w in workers)} alive of {len(workers)}"]
    for w in sorted(workers, key=lambda w: (order[w["state"]], w["host"], w["home"])):
        doing = f"{w['busy']} of {w['slots']} slots busy" if w["state"] == "alive" else w["state"]
        if w["state"] == "missing":
            doing += f", no heartbeat for {output.age(w['heartbeat_age'])}"
        lines.append(f"  {w['host']} pid {w['pid']} ({w['home']}): {doing}, errauto {w['version']}")
    return lines


EXIT_RESERVE = 0.5  # seconds of the grace kept for the last records and the log's flush
FLUSH_WAIT = 1.0  # seconds the log's last flush may take when threads are stuck

log = logging.getLogger("errauto")


def exit_reserve(grace: float) -> float:
    """Of a stop's grace, the seconds kept for the last records and the log's flush."""
    return min(EXIT_RESERVE, grace / 10)


def join_until(threads: Iterable[threading.Thread], deadline: float) -> None:
    """Wait for `threads` to end, up to `deadline` (time.monotonic())."""
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def exit_now(stuck: list[str]) -> NoReturn:
    """End the daemon's process although threads named `stuck` are still busy.

    A thread stuck in native code (git, pygit2, a socket) cannot be stopped,
    and the interpreter's normal exit would run atexit handlers and module
    teardown beside it: a lock it holds (a log handler's, say) would hang
    the exit. So: kill any check still running, flush the log from a
    helper thread with a bound, and `os._exit`. Nothing durable is lost:
    every write to the store is a transaction (an unfinished one is rolled
    back), every lock is a flock the kernel releases, and a submission left
    `validating` is recovered by the next start (its attempt counted).
    """
    killed = checks.kill_running()
    log.warning("stopped with threads still busy past the grace period (%s)%s; exiting anyway",
                ", ".join(stuck), f", {killed} checks killed" if killed else "")
    flush = threading.Thread(target=logging.shutdown, name="log-flush", daemon=True)
    flush.start()
    flush.join(timeout=FLUSH_WAIT)
    os._exit(0)
