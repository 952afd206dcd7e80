"""Whether the daemon is alive: one threshold, the same answer from `daemon status` and the monitor."""
from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from errauto_daemon import health
from errauto_daemon.daemon import daemon_status
from errauto_daemon.health import Thresholds
from errauto_daemon.presence import ALIVE_WITHIN, HEARTBEAT_EVERY, DaemonLock, heartbeat_fresh
from errauto_daemon.store import Store


@pytest.fixture
def lock() -> Iterator[DaemonLock]:
    """This process holds the daemon lock, as a running daemon would."""
    held = DaemonLock()
    held.acquire()
    yield held
    held.release()


def test_a_heartbeat_is_fresh_until_the_threshold() -> None:
    now = 1_000_000.0
    assert heartbeat_fresh(now, now=now)
    assert heartbeat_fresh(now - ALIVE_WITHIN + 0.5, now=now)
    assert not heartbeat_fresh(now - ALIVE_WITHIN, now=now)
    assert heartbeat_fresh(now + 3.0, now=now)  # a clock a little ahead is not a dead daemon
    assert not heartbeat_fresh(now - 11.0, now=now, within=10.0)
    assert HEARTBEAT_EVERY * 3 < ALIVE_WITHIN  # a couple of missed beats are not death


def test_the_monitor_default_is_the_same_threshold() -> None:
    assert Thresholds().heartbeat_warning_seconds == ALIVE_WITHIN


@pytest.mark.parametrize("age, alive", [(1.0, True), (ALIVE_WITHIN + 5.0, False)])
def test_daemon_status_and_the_monitor_agree(store: Store, lock: DaemonLock, age: float, alive: bool) -> None:
    store.daemon_started(os.getpid(), "host", "test")
    store.sql("UPDATE daemon SET heartbeat_at = ?", time.time() - age)
    status = daemon_status()
    assert status["running"] and status["alive"] is alive
    found = health.assess(store, daemon_pid=os.getpid())
    assert (found.daemon == "alive") is alive
