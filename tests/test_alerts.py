"""Alert policy, without a database: which change raises which alert, how loud, what it records."""
from __future__ import annotations

import pytest

from errauto_daemon import alerts

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend


def test_every_kind_has_a_level_and_an_unknown_kind_is_refused() -> None:
    assert set(alerts.ALERT_KINDS) == set(alerts.ALERT_LEVELS)
    assert {alerts.level_of(k) for k in alerts.ALERT_KINDS} == {"info", "warning", "critical"}
    assert alerts.level_of("daemon_error") == "critical" and alerts.level_of("review_needed") == "warning"
    with pytest.raises(ValueError, match="unknown alert kind 'nope'"):
        alerts.level_of("nope")


@pytest.mark.parametrize("from_state, to_state, route, decided, kind", [
    ("validating", "merged", "auto_merge", "auto_merge", "auto_merged"),
    ("awaiting_review", "merged", "review", "review", "merged"),
    ("validating", "awaiting_review", "review", "auto_merge", "auto_merge_failed"),
    ("validating", "awaiting_review", "review", None, "review_needed"),
    ("validating", "pr_open", "pull_request", "pull_request", "pr_opened"),
    ("pr_open", "pr_open", "pull_request", "pull_request", None),
    (None, "rejected", "rejected", None, "rejected"),
    ("validating", "failed", None, None, "daemon_error"),
    (None, "queued", None, None, None),
    ("queued", "validating", None, None, None),
])
def test_alert_for(from_state: str | None, to_state: str, route: str | None, decided: str | None,
                   kind: str | None) -> None:
    assert alerts.alert_for(from_state, to_state, route, decided) == kind


@pytest.mark.parametrize("explanation, route", [
    ('{"route": "auto_merge", "value": 0.9}', "auto_merge"),
    ('{"value": 0.9}', None),
    ('{"route": 3}', None),
    ("[1, 2]", None),
    ("not json", None),
    ("", None),
    (None, None),
])
def test_decided_route_reads_the_explanation(explanation: str | None, route: str | None) -> None:
    assert alerts.decided_route(explanation) == route


def test_alert_data_is_a_snapshot_of_the_submission_with_detail_and_extra() -> None:
    row = {field: f"<{field}>" for field in alerts.SNAPSHOT_FIELDS} | {"id": 3, "note": "not kept"}
    data = alerts.alert_data(row, "why", {"from_state": "validating"})
    assert data == {**{f: f"<{f}>" for f in alerts.SNAPSHOT_FIELDS}, "detail": "why", "from_state": "validating"}
    assert alerts.alert_data(None, "", None) == {}
    assert alerts.alert_data(None, "down", {"level": "critical"}) == {"detail": "down", "level": "critical"}


@pytest.mark.parametrize("level, alerted, last_sent, expected", [
    ("ok", None, None, False),           # nothing was ever wrong
    ("ok", "warning", 1000.0, True),     # back to ok: always told
    ("warning", "ok", None, True),
    ("warning", "ok", 0.0, False),       # told about a warning 1100 s ago: not yet again
    ("critical", "warning", 0.0, False),
    ("critical", "ok", -3000.0, True),   # an hour has passed
    ("warning", "warning", None, False),  # already told
])
def test_level_alerts(level: str, alerted: str | None, last_sent: float | None, expected: bool) -> None:
    assert alerts.level_alerts(level, alerted, last_sent, 1100.0, 3600.0) is expected
