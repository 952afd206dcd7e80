"""The daemon as a real subprocess, started, signalled and killed by tests."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from errauto_daemon.store import DECIDED, Store, Submission
from tests.helpers.gitrepo import PYTHON

T = TypeVar("T")


class DaemonProcess:
    def __init__(self, log: Path, *, workers: int = 2, grace: float = 5.0, rescan: float = 1.0,
                 env: dict[str, str] | None = None) -> None:
        self.log = log
        self.env = env
        self.args = ["--workers", str(workers), "--grace", str(grace), "--rescan", str(rescan)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> DaemonProcess:
        read_end, write_end = os.pipe()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "errauto_daemon", "daemon", "run", "--ready-fd", str(write_end), *self.args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=(write_end,),
                start_new_session=True, env=self.env if self.env is not None else os.environ.copy())
        os.close(write_end)
        message = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in message and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.2)
            if ready:
                chunk = os.read(read_end, 4096)
                if not chunk:
                    break
                message += chunk
        os.close(read_end)
        assert message.strip() == b"ready", f"daemon did not start: {message!r}\n{self.log.read_text()}"
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the daemon and everything it started (checks included), like a crash."""
        if self.proc is None or self.proc.poll() is not None:
            return
        # Checks run in their own process groups: find them while they are
        # still the daemon's children, then kill it all at once.
        groups = {self.proc.pid} | _child_groups(self.proc.pid)
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)


def _child_groups(parent: int) -> set[int]:
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            groups.add(int(fields[2]))
    return groups


def wait_until(predicate: Callable[[], T | None], timeout: float = 60.0, poll: float = 0.05,
               what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)


def progress(store: Store) -> str:
    """What the queue looks like, for a timeout's message."""
    from collections import Counter

    return str(dict(Counter(s.state for s in store.submissions(limit=100_000))))


def all_decided(store: Store, expected: int | None = None) -> list[Submission] | None:
    subs = store.submissions(limit=100_000)
    if expected is not None and len(subs) < expected:
        return None
    if subs and all(s.state in DECIDED for s in subs):
        return subs
    return None


def start(daemons: list[DaemonProcess], tmp_path: Path, **kw: float) -> DaemonProcess:
    """Start a daemon the `daemons` fixture kills at the end of the test."""
    daemon = DaemonProcess(tmp_path / "daemon-output.log", **kw)  # type: ignore[arg-type]
    daemons.append(daemon)
    return daemon.start()


def drop(folder: Path, name: str, data: bytes) -> Path:
    """Drop a file into an inbox the safe way: write elsewhere, then rename in."""
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    tmp.rename(folder / name)
    return folder / name
