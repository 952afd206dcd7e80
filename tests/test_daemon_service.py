"""The daemon under a service manager: the systemd unit, sd_notify, the journal, debug logs."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from errauto_daemon.main import main
from errauto_daemon.store import DECIDED, Store
from tests.helpers.daemon import wait_until
from tests.helpers.gitrepo import CALC, PYTHON, python_project


def test_install_service_gives_the_daemon_a_path_and_type_notify(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", f"/opt/tools/bin:relative/bin::{os.environ['PATH']}")
    assert main(["daemon", "install-service"]) == 0
    assert "journalctl --user -u errauto" in capsys.readouterr().out
    unit = (Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "errauto.service").read_text()
    assert "\nType=notify\n" in unit and "Type=simple" not in unit
    line = next(line for line in unit.splitlines() if line.startswith("Environment=PATH="))
    entries = line.removeprefix("Environment=PATH=").split(":")
    # This errauto's own bin first (where `errauto` and its `python` are), then the PATH of the install.
    assert entries[0] == sysconfig.get_path("scripts") and Path(entries[0], "errauto").exists()
    assert entries[1] == "/opt/tools/bin"
    assert "relative/bin" not in entries and "" not in entries
    assert len(entries) == len(set(entries))


def test_install_service_quotes_what_systemd_would_split(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ERRAUTO_HOME", str(tmp_path / "my state 100%"))
    assert main(["daemon", "install-service"]) == 0
    unit = (Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "errauto.service").read_text()
    assert f'Environment="ERRAUTO_HOME={tmp_path}/my state 100%%"\n' in unit


def test_install_service_names_the_database_server_but_never_writes_a_password(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    unit = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "errauto.service"
    monkeypatch.setenv("ERRAUTO_DATABASE_URL", "postgresql://errauto:hunter2secret@db.internal/errauto")
    assert main(["daemon", "install-service"]) == 2
    err = capsys.readouterr().err
    assert "holds a password" in err and "hunter2secret" not in err
    assert not unit.exists()
    monkeypatch.setenv("ERRAUTO_DATABASE_URL", "postgresql://errauto@db.internal/errauto")
    assert main(["daemon", "install-service"]) == 0
    assert "Environment=ERRAUTO_DATABASE_URL=postgresql://errauto@db.internal/errauto\n" in unit.read_text()


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = name = str(tmp_path / "notify.sock")
    else:
        name = f"@errauto-test-{os.getpid()}-{id(sock)}"
        address = "\0" + name[1:]
    sock.bind(address)
    sock.settimeout(60)  # a deadline for a daemon that never speaks, not a timing assertion
    yield sock, name
    sock.close()


def messages(sock: socket.socket) -> Iterator[list[str]]:
    while True:
        yield sock.recv(4096).decode().split("\n")


@pytest.mark.slow
def test_daemon_run_tells_systemd_ready_watchdog_and_stopping(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, name = notify_socket
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "wb") as stderr:
        st = os.fstat(stderr.fileno())
        env = {**os.environ, "NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000",
               "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        proc = subprocess.Popen([PYTHON, "-m", "errauto_daemon", "daemon", "run"], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        received = messages(sock)
        first = next(received)
        assert "READY=1" in first, first
        assert "WATCHDOG=1" in next(received)
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in (states := next(received)):
            assert states == ["WATCHDOG=1"], states
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Its log reaches the journal through stderr, stamped by the journal, not by errauto.
    journal = stderr_path.read_text()
    assert "INFO [MainThread] errauto daemon" in journal and " ready (pid " in journal
    assert "errauto daemon stopped" in journal


def test_daemon_start_passes_rescan_and_verbose_logs_at_debug(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], state_dir: Path) -> None:
    project = python_project(tmp_path / "project")
    assert main(["watch", "add", str(project.path)]) == 0
    assert main(["daemon", "start", "--verbose", "--rescan", "7.5", "--workers", "1"]) == 0
    try:
        drop = project.path / "patches" / ".fix.patch.part"
        drop.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))
        drop.rename(project.path / "patches" / "fix.patch")
        store = Store()
        wait_until(lambda: [s for s in store.submissions() if s.state in DECIDED], what="a decision")
    finally:
        assert main(["daemon", "stop"]) == 0
    log = (state_dir / "log" / "daemon.log").read_text()
    debug = [line.split(" DEBUG ", 1)[1] for line in log.splitlines() if " DEBUG " in line]
    assert any("rescan every 7.5s" in line for line in debug), log
    assert any(line.startswith("[intake] event: ") for line in debug), log
    # Taken on its file event, or by the scan at start if that came first.
    assert any("fix.patch: taken as #1" in line or ": 1 new submissions" in line for line in debug), log
    assert any("submission 1 handed to the workers" in line for line in debug), log
    assert any("taking submission 1" in line for line in debug), log
