"""Checks run in a sandbox, through the daemon: its own secrets stay out of a
check's reach, a check over a limit fails without hurting the daemon, and a
machine without bubblewrap is a configuration problem, alerted."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from errauto_daemon import paths
from errauto_daemon.main import main
from errauto_daemon.store import DECIDED, Store
from tests.helpers.daemon import DaemonProcess, all_decided, drop, start, wait_until
from tests.helpers.gitrepo import GitRepo
from tests.test_sandbox import (
    BOMB,
    CONNECT,
    DB_PASSWORD,
    HOG,
    KEY,
    TOKEN,
    _processes_with,
    hostile,
    listener,
    logs,
    project_with,
    steal,
)

__all__ = ["listener"]  # the fixture, used here

pytestmark = pytest.mark.slow


def watched(tmp_path: Path, capsys: pytest.CaptureFixture[str], **kw: str) -> GitRepo:
    repo = project_with(tmp_path, **kw)
    assert main(["watch", "add", str(repo.path)]) == 0
    capsys.readouterr()
    return repo


def test_through_the_daemon_a_hostile_test_gets_no_secret_key_network_nor_lasting_process(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess],
        monkeypatch: pytest.MonkeyPatch, listener: tuple[int, list[bytes]]) -> None:
    port, received = listener
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("DB_PASSWORD", DB_PASSWORD)
    key = Path.home() / ".ssh" / "id_rsa"
    key.parent.mkdir()
    key.write_text(KEY)
    marker = f"sleeper-{uuid.uuid4().hex}"
    repo = watched(tmp_path, capsys)
    daemon = start(daemons, tmp_path)
    patch = hostile(repo, steal(key) + f"""
code = "import os, sys, time\\nif os.fork():\\n    sys.exit()\\ntime.sleep(300)"
subprocess.Popen(["setsid", sys.executable, "-c", code, {marker!r}])
{CONNECT.format(port=port).strip()}
""")
    try:
        drop(repo.path / "patches", "hostile.patch", patch)
        store = Store()
        sub = wait_until(lambda: all_decided(store, 1), what="the decision")[0]
        assert sub.state == "merged", sub.reason
        assert _processes_with(marker) == []
    finally:
        for pid in _processes_with(marker):
            os.kill(pid, 9)
    seen = logs()
    assert "no key:" in seen and "ENV /proc/" in seen and "no network:" in seen
    assert "sentinel-key-material" not in seen
    assert TOKEN not in seen and DB_PASSWORD not in seen
    assert received == []
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_through_the_daemon_a_fork_bomb_and_a_memory_hog_fail_their_checks_and_the_daemon_goes_on(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    repo = watched(tmp_path, capsys, check="max_processes = 40\nmemory_mb = 100\ntimeout = 15\n")
    daemon = start(daemons, tmp_path)
    drop(repo.path / "patches", "bomb.patch", hostile(repo, BOMB))
    drop(repo.path / "patches", "hog.patch", hostile(repo, HOG))
    store = Store()
    subs = wait_until(lambda: all_decided(store, 2), what="two decisions")
    details = {s.title: [c.detail or "" for c in store.checks(s.id)] for s in subs}
    assert all(s.state == "awaiting_review" for s in subs), details
    assert sorted(d for ds in details.values() for d in ds) == ["killed: memory limit 100 MiB",
                                                                 "killed: process limit 40"]
    drop(repo.path / "patches", "fine.patch", hostile(repo, "pass"))
    after = wait_until(lambda: all_decided(store, 3), what="the third decision")
    assert [s.state for s in after if s.id not in {x.id for x in subs}] == ["merged"]
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_a_daemon_without_bwrap_records_the_configuration_problem_and_runs_no_check(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess],
        monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    found = shutil.which("git")
    assert found is not None
    (tools / "git").symlink_to(found)
    repo = watched(tmp_path, capsys)
    base = repo.head()
    monkeypatch.setenv("PATH", str(tools))
    start(daemons, tmp_path)
    drop(repo.path / "patches", "fix.patch", hostile(repo, "pass"))
    store = Store()
    problems = wait_until(lambda: store.config_problems(str(repo.path)), what="the configuration problem")
    assert "bwrap (bubblewrap) was not found on PATH" in problems[0].error
    assert 'sandbox = "off"' in problems[0].error
    alerts = wait_until(lambda: (paths.state_dir() / "alerts.jsonl").exists()
                        and "config_invalid" in (paths.state_dir() / "alerts.jsonl").read_text(),
                        what="the config_invalid alert")
    assert alerts
    assert not [s for s in store.submissions() if s.state in DECIDED]
    assert not list(paths.check_logs_dir().rglob("*.log"))
    assert repo.head() == base
