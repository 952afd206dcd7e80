"""Machines sharing one state database: each its own state directory, clone of a shared bare
remote, and daemon, as separate machines would have (tests/test_cluster.py)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers.daemon import DaemonProcess
from tests.helpers.gitrepo import PYTHON, git


class Machine:
    """One worker machine: its own ERRAUTO_HOME and clone of `remote`, registered with errauto."""

    def __init__(self, tmp_path: Path, name: str, remote: Path) -> None:
        self.name = name
        self.root = tmp_path / name
        self.root.mkdir()
        self.clone = self.root / "clone"
        git(tmp_path, "clone", "-q", str(remote), str(self.clone))
        self.env = {**os.environ, "ERRAUTO_HOME": str(self.root / "state"),
                    "XDG_CACHE_HOME": str(self.root / "cache")}
        self.daemon: DaemonProcess | None = None
        proc = self.errauto("watch", "add", str(self.clone))
        assert proc.returncode == 0, proc.stderr

    def errauto(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYTHON, "-m", "errauto_daemon", *args], env=self.env, capture_output=True,
                              text=input is None, input=input, timeout=120, check=False)

    def start(self, daemons: list[DaemonProcess], *, workers: int = 2) -> DaemonProcess:
        self.daemon = DaemonProcess(self.root / "daemon.log", workers=workers, rescan=2.0, grace=5.0,
                                    env=self.env)
        daemons.append(self.daemon)
        return self.daemon.start()

    @property
    def log(self) -> str:
        """What its daemon logged (the state directory's log, as on a real machine)."""
        path = self.root / "state" / "log" / "daemon.log"
        return path.read_text() if path.exists() else ""

    @property
    def inbox(self) -> Path:
        return self.clone / "patches"
