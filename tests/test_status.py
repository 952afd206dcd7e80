"""`errauto status`: every number, over a window, from a database built through the real store."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from errauto_daemon import metrics
from errauto_daemon.domain import State
from errauto_daemon.main import main
from errauto_daemon.store import Store
from tests.helpers.gitrepo import config_toml, python_project

DAY = 86400.0


def make(store: Store, n: int, *, source: str, state: str, route: str | None = None,
         conf: float | None = None, took: float | None = None, age_days: float = 0.0, repo: str = "/r",
         legacy: bool = False) -> int:
    """A submission through the real store, moved back in time. `legacy`: its
    events have no `duration` (written before schema 2): taken from the claim's event."""
    rejected = state == "rejected at intake"
    sub, _ = store.insert_submission(
        repo=repo, target="main", source=source, source_detail=None, title=f"patch {n}", author=None,
        note=None, patch_sha256="0" * 64, dedup_key=f"k{n}", state=State.REJECTED if rejected else State.QUEUED,
        reason="malformed" if rejected else None)
    if not rejected and state != "queued":
        store.claim(sub.id)
        store.transition(sub.id, State(state), route=route, confidence=conf, explanation={"route": route})
    store.sql("UPDATE submissions SET created_at = created_at - ? WHERE id = ?", age_days * DAY, sub.id)
    store.sql("UPDATE events SET ts = ts - ? WHERE submission_id = ?", age_days * DAY, sub.id)
    if took is not None:
        # As if it took that long: the claim's event that long before the decision,
        # and the duration the decision's event records.
        end = store.sql("SELECT MAX(ts) FROM events WHERE submission_id = ?", sub.id)[0][0]
        store.sql("UPDATE events SET ts = ? WHERE submission_id = ? AND to_state = 'validating'",
                  end - took, sub.id)
        store.sql("UPDATE events SET duration = ? WHERE submission_id = ? AND from_state = 'validating'",
                  None if legacy else took, sub.id)
    return sub.id


@pytest.fixture
def world(tmp_path: Path) -> tuple[Store, str]:
    project = python_project(tmp_path / "project", config=config_toml(
        extra="[status]\nminutes_per_manual_patch = 30\n"))
    assert main(["watch", "add", str(project.path)]) == 0
    repo = str(project.path)
    store = Store()
    make(store, 1, source="inbox", state="merged", route="auto_merge", conf=0.97, took=10, repo=repo)
    make(store, 2, source="inbox", state="merged", route="auto_merge", conf=0.99, took=20, repo=repo)
    make(store, 3, source="inbox", state="merged", route="auto_merge", conf=1.0, took=30, repo=repo)
    make(store, 4, source="post-receive", state="pr_open", route="pull_request", conf=0.85, took=40)
    make(store, 5, source="pre-commit", state="awaiting_review", route="review", conf=0.3, took=50,
         age_days=2)
    make(store, 6, source="pre-commit", state="awaiting_review", route="review", conf=0.5, took=200,
         legacy=True)
    make(store, 7, source="cli", state="rejected at intake")
    make(store, 8, source="cli", state="queued", age_days=0.01)
    make(store, 9, source="inbox", state="merged", route="auto_merge", conf=0.96, took=5, age_days=40)
    return store, repo


def status_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["status", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_number_over_the_window(world: tuple[Store, str], capsys: pytest.CaptureFixture[str]) -> None:
    d = status_json(capsys)
    assert d["days"] == 30 and d["submissions"] == 8
    assert d["states"] == {"queued": 1, "validating": 0, "merged": 3, "pr_open": 1, "awaiting_review": 2,
                           "rejected": 1, "failed": 0}
    assert d["routes"] == {"auto_merge": 3, "pull_request": 1, "review": 2, "rejected": 1}
    assert d["sources"] == {"inbox": 3, "post-receive": 1, "pre-commit": 2, "cli": 2}
    assert (d["decided"], d["auto_merged"]) == (7, 3)
    assert d["auto_merge_rate"] == pytest.approx(3 / 7)
    conf = d["confidence"]
    assert conf["count"] == 6
    assert conf["mean"] == pytest.approx((0.97 + 0.99 + 1.0 + 0.85 + 0.3 + 0.5) / 6)
    assert conf["median"] == pytest.approx((0.85 + 0.97) / 2)
    assert [b["count"] for b in conf["histogram"]] == [0, 0, 0, 1, 0, 1, 0, 0, 1, 3]
    durations = sorted([10, 20, 30, 40, 50, 200])
    v = d["validation_seconds"]
    assert v["count"] == 6
    assert v["p50"] == pytest.approx(metrics.percentile([float(x) for x in durations], 0.5))
    assert v["p95"] == pytest.approx(162.5)
    assert d["throughput"]["decided"] == 7 and d["throughput"]["per_day_mean"] == pytest.approx(7 / 30)
    per_day = d["throughput"]["per_day"]
    assert len(per_day) == 30 and per_day[-1]["date"] == time.strftime("%Y-%m-%d")
    assert sum(x["decided"] for x in per_day) == 7 and per_day[-1]["merged"] == 3
    assert per_day[-3]["decided"] == 1  # the review two days ago
    assert d["review_hours_saved"] == pytest.approx(3 * 30 / 60)  # this repository's 30 minutes
    assert d["queue"]["depth"] == 1 and d["queue"]["awaiting_review"] == 2
    assert d["queue"]["oldest_review_seconds"] == pytest.approx(2 * DAY, abs=60)
    assert d["queue"]["oldest_seconds"] == pytest.approx(0.01 * DAY, abs=60)
    assert d["pending"] == 3 and d["oldest_pending_seconds"] == pytest.approx(2 * DAY, abs=60)
    # Every decision raised an alert; nothing delivered them yet.
    assert d["alerts"] == {"undelivered": 8, "oldest_undelivered_seconds": d["alerts"]["oldest_undelivered_seconds"],
                           "failed": 0, "sinks": []}


def test_a_wider_window_and_the_text(world: tuple[Store, str], capsys: pytest.CaptureFixture[str]) -> None:
    d = status_json(capsys, "--days", "60")
    assert d["submissions"] == 9 and d["auto_merged"] == 4 and d["validation_seconds"]["count"] == 7
    assert d["review_hours_saved"] == pytest.approx(3 * 30 / 60 + 15 / 60)  # the 9th is in no registered repo
    capsys.readouterr()
    assert main(["status", "--days", "7"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("last 7 days: 8 submissions; 3 pending, oldest 2d\n")
    assert "auto-merge rate: 43% (3 of 7 decided)" in out
    assert "review time saved: ~1.5 h" in out
    assert "confidence: mean 0.77, median 0.91 (6 scored)" in out
    assert re.search(r"\n  0\.9-1\.0 [█#]{40} 3\n", out)  # blocks on a UTF-8 terminal, else #
    assert re.search(r"\n  0\.3-0\.4 [█#]{13} 1\n", out) and "\n  0.0-0.1 0\n" in out
    assert "queue: 1 queued or validating (oldest 14m); 2 awaiting review (oldest 2d)" in out
    assert "validation time: p50 35.0s, p95 2m (6 validations)" in out
    assert "throughput: 1.0 decisions a day; last 7 days: 0 0 0 0 1 0 6" in out
    assert "alerts: 8 undelivered" in out
    for word in ("STATE", "ROUTE", "SOURCE", "post-receive"):
        assert word in out


def test_status_of_an_empty_database(capsys: pytest.CaptureFixture[str]) -> None:
    d = status_json(capsys)
    assert d["submissions"] == 0 and d["auto_merge_rate"] is None and d["confidence"]["mean"] is None
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "0 submissions; 0 pending" in out and "confidence: - (nothing scored)" in out


def test_the_alerts_line_names_each_sink_and_why_it_is_not_ok() -> None:
    from errauto_daemon.commands.status import _alerts, _confidence

    line = _alerts(metrics.Alerts(undelivered=2, oldest_undelivered_seconds=600, failed=1, sinks=(
        metrics.Sink("jsonl", "ok", 0, None, None, None),
        metrics.Sink("slack:TEAM_HOOK", "open", 3, None, "HTTP 500", None))))
    assert line == ("alerts: 2 undelivered (oldest 10m), 1 deliveries failed for good; jsonl ok; "
                    "slack:TEAM_HOOK open (HTTP 500)")
    assert _confidence(metrics.Confidence(0, None, None, ()), "#") == ["confidence: - (nothing scored)"]


def test_collect_returns_a_status_read_by_attribute_and_printed_as_json(world: tuple[Store, str]) -> None:
    store, repo = world
    status = metrics.collect(store, 30, minutes={repo: 30.0})
    assert isinstance(status, metrics.Status)
    assert (status.submissions.total, status.submissions.auto_merged, status.submissions.decided) == (8, 3, 7)
    assert status.pending == status.queue.depth + status.queue.awaiting_review == 3
    assert status.oldest_pending_seconds == status.queue.oldest_review_seconds
    assert [b.count for b in status.confidence.histogram] == [0, 0, 0, 1, 0, 1, 0, 0, 1, 3]
    assert len(status.throughput.per_day) == 30 and status.throughput.per_day[-1].merged == 3
    document = status.to_json()
    assert list(document) == ["days", "since", "submissions", "states", "routes", "sources", "decided",
                              "auto_merged", "auto_merge_rate", "confidence", "pending", "oldest_pending_seconds",
                              "queue", "validation_seconds", "throughput", "review_hours_saved", "alerts",
                              "flaky_tests"]
    assert document["confidence"]["histogram"][9] == {"from": 0.9, "to": 1.0, "count": 3}
    assert json.loads(json.dumps(document)) == document  # plain JSON values only
