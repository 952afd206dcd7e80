"""`errauto monitor` and health levels: every criterion, the exit codes, level-change alerts."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from errauto_daemon import health, notify
from errauto_daemon.domain import State
from errauto_daemon.health import Thresholds
from errauto_daemon.main import main
from errauto_daemon.presence import DaemonLock
from errauto_daemon.store import Store, Submission, level_alerts
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.gitrepo import GitRepo, config_toml, python_project

T = Thresholds(heartbeat_warning_seconds=10, heartbeat_critical_seconds=60, backlog_warning=2,
               backlog_critical=4, oldest_warning_hours=1, oldest_critical_hours=2,
               failure_rate_warning=0.25, failure_rate_critical=0.5, failure_min_decisions=4,
               outbox_warning_minutes=5, outbox_critical_minutes=30)

def submission(store: Store, n: int, state: str, *, route: str = "review") -> Submission:
    sub, _ = store.insert_submission(repo="/r", target="main", source="cli", source_detail=None,
                                     title=f"patch {n}", author=None, note=None, patch_sha256="0" * 64,
                                     dedup_key=f"k{n}")
    if state == "queued":
        return sub
    store.claim(sub.id)
    if state == "validating":
        return sub
    return store.transition(sub.id, State(state), route=route)


def grade(store: Store, name: str, *, pid: int | None = 1, now: float | None = None) -> str:
    found = health.assess(store, daemon_pid=pid, now=now, thresholds=T)
    return {c.name: c.level for c in found.criteria}[name]


def alive(store: Store, age: float = 0.0, now: float | None = None) -> None:
    store.daemon_started(1, "host", "test")
    store.sql("UPDATE daemon SET heartbeat_at = ?", (now or time.time()) - age)


# -- each criterion -------------------------------------------------------------------


@pytest.mark.parametrize("age, level", [(0, "ok"), (9, "ok"), (10, "warning"), (59, "warning"), (60, "critical")])
def test_heartbeat_age(store: Store, age: float, level: str) -> None:
    now = time.time()
    alive(store, age, now)
    assert grade(store, "daemon", now=now) == level


def test_no_daemon_is_a_warning_and_critical_once_work_waits(store: Store) -> None:
    assert grade(store, "daemon", pid=None) == "warning"
    submission(store, 1, "queued")
    assert grade(store, "daemon", pid=None) == "critical"


@pytest.mark.parametrize("waiting, level", [(0, "ok"), (1, "ok"), (2, "warning"), (3, "warning"), (4, "critical")])
def test_backlog_size(store: Store, waiting: int, level: str) -> None:
    alive(store)
    for n in range(waiting):
        submission(store, n, "awaiting_review")
    assert grade(store, "backlog") == level


@pytest.mark.parametrize("hours, level", [(0.5, "ok"), (1.0, "warning"), (1.9, "warning"), (2.0, "critical")])
def test_oldest_waiting(store: Store, hours: float, level: str) -> None:
    alive(store)
    sub = submission(store, 1, "awaiting_review")
    assert grade(store, "oldest", now=sub.created_at + hours * 3600 + 1) == level


@pytest.mark.parametrize("failed, ok, level", [
    (0, 4, "ok"), (1, 3, "warning"), (2, 2, "critical"),
    (2, 1, "ok"),  # three decisions: too few to grade a rate
])
def test_failure_rate_over_the_last_hour(store: Store, failed: int, ok: int, level: str) -> None:
    alive(store)
    for n in range(failed):
        submission(store, n, "failed")
    for n in range(ok):
        submission(store, 100 + n, "merged", route="auto_merge")
    assert grade(store, "failures") == level
    # An hour later they no longer count.
    assert grade(store, "failures", now=time.time() + 3601) == "ok"


def test_outbox_backlog_by_age_and_failed_deliveries(store: Store) -> None:
    alive(store)
    assert grade(store, "outbox") == "ok"
    alert = store.add_alert("daemon_error", "boom")
    assert grade(store, "outbox", now=time.time() + 60) == "ok"
    assert grade(store, "outbox", now=time.time() + 5 * 60 + 1) == "warning"
    assert grade(store, "outbox", now=time.time() + 30 * 60 + 1) == "critical"
    store.route_alerts({alert: ["slack:X"]})
    assert grade(store, "outbox", now=time.time() + 30 * 60 + 1) == "critical"  # routed, still pending
    store.delivered("slack:X", [alert], failed="Slack refused the message (HTTP 404: no_service)")
    found = health.assess(store, daemon_pid=1, thresholds=T)
    (outbox,) = [c for c in found.criteria if c.name == "outbox"]
    assert outbox.level == "warning" and "1 deliveries failed for good" in outbox.text


def test_the_level_is_the_worst_criterion_with_its_reasons(store: Store) -> None:
    alive(store, 30)
    for n in range(4):
        submission(store, n, "awaiting_review")
    found = health.assess(store, daemon_pid=1, thresholds=T)
    assert found.level == "critical" and found.reasons == ("4 awaiting review",)
    assert found.exit_code == 2
    assert "4 awaiting review" in found.line() and found.line().endswith("critical (4 awaiting review)")


# -- level changes raise alerts, at most once an hour per level ------------------------------


@pytest.mark.parametrize("level, alerted, last, expected", [
    ("ok", "ok", None, False),
    ("ok", None, None, False),
    ("warning", "ok", None, True),
    ("warning", "warning", 0.0, False),
    ("warning", "ok", 100.0, False),  # alerted 1000 s ago
    ("warning", "ok", -3000.0, True),  # alerted an hour ago
    ("critical", "warning", None, True),
    ("warning", "critical", None, True),  # better, but still not ok
    ("ok", "critical", 0.0, True),
])
def test_which_level_changes_alert(level: str, alerted: str | None, last: float | None, expected: bool) -> None:
    assert level_alerts(level, alerted, last, 1100.0, 3600.0) == expected


def test_a_flapping_level_alerts_at_most_once_an_hour(store: Store) -> None:
    t = 1_000_000.0
    kinds = []
    for minute, level in enumerate(["ok", "warning", "ok", "warning", "ok", "warning", "warning"]):
        alert = store.record_level(level, f"level {level}", {}, "{}", now=t + minute * 60)
        kinds.append(store.alerts(1, after=alert - 1)[0].kind if alert else None)
    assert kinds == [None, "monitor_warning", "monitor_ok", None, None, None, None]
    # Still warning an hour after the first warning: said again, once.
    alert = store.record_level("warning", "still", {}, "{}", now=t + 3600 + 60)
    assert alert is not None and store.alerts(1, after=alert - 1)[0].kind == "monitor_warning"
    assert store.record_level("warning", "still", {}, "{}", now=t + 3600 + 120) is None
    row = store.monitor_row()
    assert row is not None and row["level"] == "warning"


# -- the command ------------------------------------------------------------------------------


def registered(tmp_path: Path, monitor: str) -> GitRepo:
    project = python_project(tmp_path / "project", config=config_toml(extra=f"[monitor]\n{monitor}"))
    assert main(["watch", "add", str(project.path)]) == 0
    return project


def run_monitor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["monitor", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_monitor_exit_codes_thresholds_from_config_and_one_alert_per_change(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registered(tmp_path, "backlog_warning = 1\nbacklog_critical = 2\n")
    lock = DaemonLock()
    lock.acquire()  # a daemon, as far as `monitor` can tell
    try:
        store = Store()
        store.daemon_started(os.getpid(), "host", "test")
        code, out = run_monitor(capsys)
        assert (code, out["level"], out["alert"]) == (0, "ok", None)
        assert out["thresholds"]["backlog_warning"] == 1
        submission(store, 1, "awaiting_review")
        code, out = run_monitor(capsys)
        assert (code, out["level"], out["alert"]) == (1, "warning", "monitor_warning")
        assert out["reasons"] == ["1 awaiting review"]
        code, out = run_monitor(capsys)
        assert (code, out["alert"]) == (1, None)  # the same level: no new alert
        submission(store, 2, "awaiting_review")
        code, out = run_monitor(capsys)
        assert (code, out["level"], out["alert"]) == (2, "critical", "monitor_critical")
        for sub in store.submissions((State.AWAITING_REVIEW,)):
            store.transition(sub.id, State.REJECTED, reason="no")
        code, out = run_monitor(capsys)
        assert (code, out["alert"]) == (0, "monitor_ok")
        assert out["delivered_here"] is None  # a daemon runs: it delivers
    finally:
        lock.release()
    capsys.readouterr()
    assert main(["monitor"]) == 1  # the daemon is gone: a warning
    text = capsys.readouterr().out
    assert text.startswith("errauto monitor: warning\n")
    assert "warning   daemon    no daemon is running" in text and "[warning 1, critical 2]" in text
    # The hook's status line grades with the thresholds the monitor recorded.
    assert health.assess(Store(), daemon_pid=None).thresholds.backlog_warning == 1


def test_monitor_from_cron_delivers_the_outbox_itself(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeSlack() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        store = Store()
        submission(store, 1, "awaiting_review")  # an `errauto apply` left this alert behind
        code, out = run_monitor(capsys)
        assert code == 1 and out["alert"] == "monitor_warning" and out["delivered_here"] is True
        text = "\n".join(r.text for r in slack.received)
        assert "Review needed" in text and "errauto monitor: warning" in text and "no daemon is running" in text
        assert [c for c in out["criteria"] if c["name"] == "outbox"][0]["level"] == "ok"


def test_a_misconfigured_repository_does_not_stop_the_monitor(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "add", str(repo.path)]) == 0
    repo.commit("config", {".errauto.toml": "[monitor]\nbacklog_warning = 'ten'\n"})
    assert main(["monitor", "--deliver", "0"]) == 1  # no daemon: a warning, graded with the defaults
    assert "[warning 10, critical 50]" in capsys.readouterr().out


def test_status_and_monitor_never_show_the_webhook(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeSlack() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        slack.answer(404, "no_service")
        store = Store()
        submission(store, 1, "awaiting_review")
        assert notify.flush(store, 1.0) is True  # refused: failed for good
        for args in (["monitor", "--deliver", "0"], ["monitor", "--json", "--deliver", "0"], ["status"],
                     ["status", "--json"]):
            main(args)
            out, err = capsys.readouterr()
            assert slack.url not in out + err and slack.path not in out + err
        main(["status"])
        out = capsys.readouterr().out
        assert "1 deliveries failed for good" in out
        assert "slack:SLACK_WEBHOOK_URL failing (Slack refused the message (HTTP 404: no_service))" in out


def test_a_registered_directory_that_is_no_repository_any_more_is_skipped(
        store: Store, project: GitRepo, tmp_path: Path) -> None:
    gone = tmp_path / "was-a-repository"
    gone.mkdir()
    store.add_repo(str(gone))  # git fails there: the user's doing, not an internal error
    store.add_repo(str(project.path))
    assert list(health.registered_configs(store)) == [str(project.path)]


def test_each_criterion_on_its_own(store: Store) -> None:
    from errauto_daemon.health import _daemon_criterion, _outbox_criterion, _review_criteria

    t = Thresholds()
    daemon, criterion = _daemon_criterion(store, None, 1, time.time(), t)
    assert (daemon, criterion.level, criterion.text) == ("not running", "critical", "no daemon is running")
    assert _daemon_criterion(store, None, 0, time.time(), t)[1].level == "warning"
    awaiting, oldest, (backlog, oldest_c) = _review_criteria(store, time.time(), t)
    assert (awaiting, oldest, backlog.level, oldest_c.text) == (0, None, "ok", "nothing awaits review")
    outbox = _outbox_criterion(store, time.time(), t)
    assert (outbox.level, outbox.text) == ("ok", "0 alerts undelivered")
