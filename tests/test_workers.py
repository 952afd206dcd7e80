"""Every daemon of a database as a worker: its row, what `daemon status` and `status` show of the
workers, and `monitor` grading one that went silent (a machine that went away)."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from errauto_daemon import health, paths
from errauto_daemon.store import Store
from tests.helpers.cli import run
from tests.helpers.daemon import DaemonProcess, start, wait_until

T = health.Thresholds(heartbeat_warning_seconds=10, heartbeat_critical_seconds=60)


def levels(store: Store) -> dict[str, tuple[str, str]]:
    found = health.assess(store, daemon_pid=1, thresholds=T)
    return {c.name: (c.level, c.text) for c in found.criteria}


def test_a_worker_row_follows_its_daemon_and_a_restart_replaces_it(store: Store) -> None:
    store.worker_started("build-1", "/srv/errauto", 100, "1.0", 4)
    store.heartbeat(100, host="build-1", home="/srv/errauto", busy=3)
    (w,) = store.workers()
    assert (w.name, w.pid, w.slots, w.busy, w.stopped_at) == ("build-1:/srv/errauto", 100, 4, 3, None)
    store.heartbeat(999, host="build-1", home="/srv/errauto", busy=1)  # not its pid: nothing changes
    assert store.workers()[0].busy == 3
    store.worker_started("build-1", "/srv/errauto", 200, "1.1", 8)  # restarted: the same row, renewed
    (w,) = store.workers()
    assert (w.pid, w.version, w.slots, w.busy) == (200, "1.1", 8, 0)
    store.worker_stopped("build-1", "/srv/errauto", 200)
    assert store.workers()[0].stopped_at is not None


def test_monitor_grades_a_worker_that_went_silent(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    for host in ("build-1", "build-2", "build-3"):
        store.worker_started(host, "/srv/errauto", 100, "1.0", 4)
    assert levels(store)["workers"] == ("ok", "3 of 3 workers alive")

    store.sql("UPDATE workers SET heartbeat_at = ? WHERE host = 'build-2'", time.time() - 120)
    level, text = levels(store)["workers"]
    assert level == "critical" and text.startswith("2 of 3 workers alive; build-2 (pid 100, /srv/errauto) silent")
    code, out, _ = run(capsys, "monitor", "--json")
    workers = next(c for c in json.loads(out)["criteria"] if c["name"] == "workers")
    assert code == 2 and workers["level"] == "critical"

    store.worker_stopped("build-3", "/srv/errauto", 100)  # a worker that said it stopped is not missing
    assert levels(store)["workers"][1].startswith("1 of 2 workers alive")
    code, out, _ = run(capsys, "daemon", "forget", "build-2")
    assert code == 0 and "forgot 1 worker of build-2" in out
    assert levels(store)["workers"] == ("ok", "1 of 1 workers alive")
    assert run(capsys, "daemon", "forget", "build-2")[0] == 1  # nothing left of it


def test_status_and_daemon_status_list_the_workers_missing_first(store: Store,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    store.worker_started("build-1", "/srv/errauto", 100, "1.0", 4)
    store.worker_started("build-2", "/srv/errauto", 200, "1.0", 4)
    store.sql("UPDATE workers SET heartbeat_at = ? WHERE host = 'build-2'", time.time() - 600)
    _, out, _ = run(capsys, "status")
    lines = out.splitlines()
    at = lines.index("workers: 1 alive of 2")
    assert lines[at + 1].startswith("  build-2 pid 200 (/srv/errauto): missing, no heartbeat for 10m")
    assert lines[at + 2] == "  build-1 pid 100 (/srv/errauto): 0 of 4 slots busy, errauto 1.0"
    _, out, _ = run(capsys, "status", "--json")
    assert {w["host"]: w["state"] for w in json.loads(out)["workers"]} == {"build-1": "alive", "build-2": "missing"}
    _, out, _ = run(capsys, "daemon", "status", "--json")
    assert [w["state"] for w in json.loads(out)["workers"]] == ["alive", "missing"]


@pytest.mark.slow
def test_a_running_daemon_is_a_worker_and_a_killed_one_goes_missing(
        tmp_path: Path, daemons: list[DaemonProcess], capsys: pytest.CaptureFixture[str]) -> None:
    daemon = start(daemons, tmp_path)
    store = Store()
    me = (socket.gethostname(), str(paths.state_dir()))
    worker = wait_until(lambda: next((w for w in store.workers() if (w.host, w.home) == me), None))
    assert worker.pid == daemon.pid and worker.stopped_at is None and worker.slots >= 1
    code, out, _ = run(capsys, "daemon", "status")
    assert code == 0 and f"  {me[0]} pid {daemon.pid} ({me[1]}): 0 of {worker.slots} slots busy" in out

    daemon.kill()  # SIGKILL: no chance to say it stopped
    silent = time.time() + T.heartbeat_warning_seconds  # as the monitor sees it that much later
    found = health.assess(store, daemon_pid=None, thresholds=T, now=silent)
    workers = next(c for c in found.criteria if c.name == "workers")
    assert workers.level == "warning" and f"pid {daemon.pid}" in workers.text

    start(daemons, tmp_path)  # back on this machine: the same row, alive again
    wait_until(lambda: next((w for w in store.workers() if w.pid != daemon.pid), None))
    assert [(w.host, w.home) for w in store.workers()] == [me]
