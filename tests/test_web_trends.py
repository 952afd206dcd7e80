"""The trends page of `errauto web` (`/trends`) and the charts it draws.

The page is asked through Flask's test client, on states made by real
validations (`errauto apply`) or, where many dated decisions are needed, by
rows written into a real state database. The numbers are read back from
each chart's table and from its SVG shapes.
"""
from __future__ import annotations

import datetime
import html
import json
import os
import re
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from errauto_daemon import health
from errauto_daemon.domain import State
from errauto_daemon.store import Store
from errauto_daemon.web import charts
from errauto_daemon.web.app import WebConfig, create_app
from tests.helpers.gitrepo import CALC, GitRepo, config_toml, python_project
from tests.test_web import TESTS_FAIL, TOKEN, XSS, apply, cli, client_for

DAY = 86400.0


def page(client: FlaskClient, query: str = "") -> str:
    answer = client.get("/trends" + query)
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def svg(body: str, chart: str) -> str:
    """The inline SVG of one chart (by its id)."""
    found = re.search(rf'<svg [^>]*aria-labelledby="{chart}-title {chart}-desc">.*?</svg>', body, re.S)
    assert found, chart
    return found[0]


def rows(body: str, table: str) -> list[list[str]]:
    """The cells of a table's body rows, as text."""
    found = re.search(rf'<table class="[^"]*\b{table}\b[^"]*">.*?<tbody>(.*?)</tbody>', body, re.S)
    assert found, table
    return [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", found[1], re.S)]


def day_of(ts: float) -> str:
    return datetime.date.fromtimestamp(ts).isoformat()


def at(value: float) -> float:
    """Where a confidence is on the histogram's x axis."""
    return round(charts.LEFT + charts.PLOT_WIDTH * value, 2)


def registered(tmp_path: Path, store: Store, *, auto_merge: float, pr: float) -> GitRepo:
    project = python_project(tmp_path / "proj", config=config_toml(
        top=f"auto_merge_threshold = {auto_merge}\npr_threshold = {pr}"))
    store.add_repo(os.path.realpath(project.path))
    return project


# -- the charts, directly ------------------------------------------------------------------


def test_nice_tops_are_one_two_or_five_times_a_power_of_ten() -> None:
    assert [charts.nice_top(v) for v in (0, 0.3, 1, 3, 4, 7, 12, 50, 51)] == \
        [1.0, 0.5, 1.0, 5.0, 5.0, 10.0, 20.0, 50.0, 100.0]


def test_stacked_bars_stack_each_series_and_leave_out_empty_parts() -> None:
    chart = charts.stacked_bars("t", "d", ["mon", "tue"], [charts.Series("a", "css-a", (1.0, 0.0)),
                                                           charts.Series("b", "css-b", (2.0, 3.0))])
    assert [(r.css, r.label) for r in chart.rects] == [("css-a", "mon a: 1"), ("css-b", "mon b: 2"),
                                                      ("css-b", "tue b: 3")]
    unit = charts.PLOT_HEIGHT / 5  # the top of the axis is 5 (3 rounded up)
    bottom = charts.TOP + charts.PLOT_HEIGHT
    a, b, tue = chart.rects
    assert a.height == pytest.approx(unit) and a.y + a.height == pytest.approx(bottom)
    assert b.height == pytest.approx(2 * unit) and b.y + b.height == pytest.approx(a.y)  # on top of a
    assert tue.height == pytest.approx(3 * unit) and tue.x > a.x
    assert [t.text for t in chart.texts if t.anchor == "middle"] == ["mon", "tue"]
    assert [t.text for t in chart.texts if t.anchor == "end"] == ["0", "1.25", "2.5", "3.75", "5"]


def test_a_line_breaks_where_a_value_is_missing() -> None:
    chart = charts.line_chart("t", "d", ["1", "2", "3", "4"],
                              [charts.Series("rate", "rate", (0.5, None, 1.0, 0.25))], top=1.0)
    assert len(chart.polylines) == 1 and len(chart.polylines[0].points.split()) == 2
    assert [d.label for d in chart.dots] == ["1 rate: 0.5", "3 rate: 1", "4 rate: 0.25"]
    assert charts.line_chart("t", "d", ["1", "2", "3"],
                             [charts.Series("s", "s", (1.0, None, 2.0))]).polylines == ()


def test_a_histogram_draws_its_marks_where_their_values_are() -> None:
    chart = charts.histogram("t", "d", [(0.0, 0.5, 0), (0.5, 1.0, 4)],
                             [charts.Mark(0.9, "auto-merge", "am"), charts.Mark(0.7, "pull request", "pr")])
    assert len(chart.rects) == 1 and chart.rects[0].label == "0.5 to 1.0: 4"
    marks = [line for line in chart.lines if line.css in ("am", "pr")]
    assert [(m.css, m.x1, m.x2, m.label) for m in marks] == [
        ("am", at(0.9), at(0.9), "auto-merge: 0.9"), ("pr", at(0.7), at(0.7), "pull request: 0.7")]
    assert all(m.y1 == charts.TOP and m.y2 == charts.TOP + charts.PLOT_HEIGHT for m in marks)


# -- who may ask, and an empty store ----------------------------------------------------------


def test_the_trends_page_needs_the_token() -> None:
    client = create_app(WebConfig(token=TOKEN, db_path=Store().path)).test_client()
    for path in ("/trends", "/trends?days=7", "/static/trends.css"):
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert b"Trends" not in answer.data
    assert client.get("/trends?token=wrong").status_code == 403
    assert client.get(f"/trends?days=7&token={TOKEN}").headers["Location"] == "/trends?days=7"


def test_an_empty_store_shows_an_empty_trends_page() -> None:
    Store()
    client = client_for()
    body = page(client)
    assert "<svg" not in body and "<rect" not in body
    for words in ("Nothing was decided in the last 30 days.", "Nothing was scored in the last 30 days.",
                  "No validation was decided in the last 30 days.", "Nothing waits",
                  "No alert was raised in the last 30 days.", "No test failed and then passed"):
        assert words in body
    # No repository registered: the thresholds are the defaults, and said to be.
    assert "auto-merge threshold: <span class=\"n\">0.95</span> (the default" in body
    assert "pull request threshold: <span class=\"n\">0.8</span> (the default" in body
    assert rows(body, "criteria")[0][:3] == ["warning", "daemon", "no daemon is running"]
    assert 'href="/trends">Trends</a>' in body and 'href="/static/trends.css"' in body
    assert 'href="/trends">Trends</a>' in client.get("/").get_data(as_text=True)  # in every page's nav
    # An open trends page asks for changes every 30 s, the queue every 2 s (the page's script reads it).
    assert 'data-live-seconds="30"' in body
    assert 'data-live-seconds="2"' in client.get("/").get_data(as_text=True)


def test_days_is_kept_within_its_bounds() -> None:
    Store()
    client = client_for()
    for query, days in (("", 30), ("?days=7", 7), ("?days=0", 1), ("?days=-5", 1), ("?days=100000", 365),
                        ("?days=many", 30)):
        body = page(client, query)
        assert f'name="days" value="{days}"' in body, query
        assert f"<h2>The last {days} days</h2>" in body, query


# -- the numbers, from dated rows ------------------------------------------------------------


def decided(store: Store, n: int, *, ago: float, state: State, route: str | None, confidence: float | None,
            took: float, repo: str = "/srv/git/api") -> None:
    """A submission validated and decided `ago` seconds ago, its validation having taken `took` seconds."""
    now = time.time()
    sub, _ = store.insert_submission(repo=repo, target="main", source="cli", source_detail=None,
                                     title=f"patch {n}", author=None, note=None, patch_sha256=f"{n:064x}",
                                     dedup_key=f"k{n}")
    at = now - ago
    store.sql("UPDATE submissions SET state = ?, route = ?, confidence = ?, created_at = ?, "
              "decided_at = ? WHERE id = ?", state, route, confidence, at - took, at, sub.id)
    store.sql("INSERT INTO events (submission_id, ts, kind, from_state, to_state, route, duration) "
              "VALUES (?, ?, 'state', 'validating', ?, ?, ?)", sub.id, at, state, route, took)


def waiting(store: Store, n: int, *, ago: float) -> None:
    sub, _ = store.insert_submission(repo="/srv/git/api", target="main", source="inbox", source_detail=None,
                                     title=f"waits {n}", author=None, note=None, patch_sha256=f"{n:064x}",
                                     dedup_key=f"w{n}")
    store.sql("UPDATE submissions SET created_at = ? WHERE id = ?", time.time() - ago, sub.id)


@pytest.fixture
def history(tmp_path: Path) -> dict[str, str]:
    """Decisions yesterday and three days ago, two submissions queued, alerts; a repository with thresholds."""
    store = Store()
    registered(tmp_path, store, auto_merge=0.9, pr=0.7)
    for n, conf, took in ((1, 0.97, 10.0), (2, 0.98, 20.0), (3, 0.99, 30.0)):
        decided(store, n, ago=DAY, state=State.MERGED, route="auto_merge", confidence=conf, took=took)
    decided(store, 4, ago=DAY, state=State.AWAITING_REVIEW, route="review", confidence=0.5, took=40.0)
    decided(store, 5, ago=3 * DAY, state=State.PR_OPEN, route="pull_request", confidence=0.85, took=60.0)
    decided(store, 6, ago=3 * DAY, state=State.PR_OPEN, route="pull_request", confidence=0.9, took=90.0)
    decided(store, 7, ago=3 * DAY, state=State.FAILED, route=None, confidence=None, took=120.0)
    waiting(store, 8, ago=1800)
    waiting(store, 9, ago=2 * 3600)
    store.add_alert("daemon_error", "boom")
    store.add_alert("daemon_error", "boom again")
    earlier = store.add_alert("review_needed", "held")
    store.sql("UPDATE outbox SET created_at = ? WHERE id = ?", time.time() - 3 * DAY, earlier)
    now = time.time()
    return {"yesterday": day_of(now - DAY), "three": day_of(now - 3 * DAY), "today": day_of(now)}


def test_decisions_per_day_by_route_and_the_auto_merge_rate(history: dict[str, str]) -> None:
    body = page(client_for())
    table = {r[0]: r[1:] for r in rows(body, "decisions")}
    assert len(table) == 30
    # Routes decided in the window, in a fixed order: auto_merge, pull_request, review, failed.
    assert re.search(r"<th>Day</th><th>auto_merge</th><th>pull_request</th><th>review</th><th>failed</th>", body)
    assert table[history["yesterday"]] == ["3", "0", "1", "0", "4", "75%"]
    assert table[history["three"]] == ["0", "2", "0", "1", "3", "0%"]
    assert table[history["today"]] == ["0", "0", "0", "0", "0", "-"]
    bars = re.findall(r'<rect [^>]*class="(route-\w+)"><title>([^<]*)</title>', svg(body, "decisions"))
    assert sorted(bars) == sorted([("route-auto_merge", f"{history['yesterday']} auto_merge: 3"),
                                   ("route-review", f"{history['yesterday']} review: 1"),
                                   ("route-pull_request", f"{history['three']} pull_request: 2"),
                                   ("route-failed", f"{history['three']} failed: 1")])
    assert "7 decisions in the last 30 days: auto_merge 3, pull_request 2, review 1, failed 1" in body
    # Nothing the CSP would refuse: no inline style or script, colours by class.
    assert "style=" not in body and "<style" not in body and "<script>" not in body
    legend = re.findall(r'<li><svg [^>]*><rect [^>]*class="(route-\w+)"/></svg> (\w+)</li>', body)
    assert legend == [(f"route-{r}", r) for r in ("auto_merge", "pull_request", "review", "failed")]
    # The rate: a point on each day something was decided, none on the others.
    points = re.findall(r'<circle [^>]*class="rate"><title>([^<]*)</title>', svg(body, "rate"))
    assert points == [f"{history['three']} auto-merge rate: 0%", f"{history['yesterday']} auto-merge rate: 75%"]
    assert "the share auto-merged; over the last 30 days: 43% of 7 decisions" in body
    # The same numbers as `errauto status`.
    status = json.loads(cli("status", "--json").stdout)
    assert status["throughput"]["decided"] == 7
    assert f"auto-merge rate <span class=\"n\">{status['auto_merge_rate'] * 100:.0f}%</span>" in body


def test_the_confidence_histogram_draws_the_configured_thresholds(history: dict[str, str]) -> None:
    body = page(client_for())
    counts = {r[0]: int(r[1]) for r in rows(body, "histogram")}
    assert counts["0.9 to 1.0"] == 4 and counts["0.8 to 0.9"] == 1 and counts["0.5 to 0.6"] == 1
    assert sum(counts.values()) == 6
    chart = svg(body, "confidence")
    assert len(re.findall(r"<rect ", chart)) == 3  # the buckets that hold something
    for css, value in (("threshold-auto-merge", 0.9), ("threshold-pull-request", 0.7)):
        x = at(value)
        assert re.search(rf'<line x1="{x}" y1="{charts.TOP}" x2="{x}" y2="{charts.TOP + charts.PLOT_HEIGHT}" '
                         rf'class="{css}">', chart), css
    assert "thresholds: auto-merge 0.9, pull request 0.7" in body
    assert "(the default" not in body


def test_time_to_decision_per_day(history: dict[str, str]) -> None:
    body = page(client_for())
    table = {r[0]: r[1:] for r in rows(body, "times")}
    assert table[history["yesterday"]] == ["4", "25.0s", "38.5s"]
    assert table[history["three"]] == ["3", "90.0s", "117.0s"]  # in seconds up to two minutes, as `status` says
    assert table[history["today"]] == ["0", "-", "-"]
    assert len(re.findall(r'<circle [^>]*class="p50"', svg(body, "times"))) == 2
    status = json.loads(cli("status", "--json").stdout)["validation_seconds"]
    assert status["count"] == 7 and f"median {status['p50']:.1f}s" in body


def test_backlog_age_alerts_and_health(history: dict[str, str]) -> None:
    body = page(client_for())
    waits = {r[0]: r[1:] for r in rows(body, "waiting")}
    # Bands: < 1 h, 1-4 h, 4 h-1 d, 1-3 d, 3-7 d, 7 d or more; then all, oldest.
    assert waits["queued or validating"] == ["1", "1", "0", "0", "0", "0", "2", "2h"]
    assert waits["awaiting review"] == ["0", "0", "0", "1", "0", "0", "1", "1d"]
    assert len(re.findall(r"<rect ", svg(body, "waiting"))) == 3

    alerts = {r[0]: r[1:] for r in rows(body, "alerts")}
    assert re.search(r"<th>Day</th><th>daemon_error</th><th>review_needed</th><th>all</th>", body)
    assert alerts[history["today"]] == ["2", "0", "2"] and alerts[history["three"]] == ["0", "1", "1"]
    assert "3 alerts in the last 30 days: daemon_error 2, review_needed 1" in body

    # The level `monitor` would grade, criterion by criterion; assessed, not recorded.
    found = health.assess(Store(), daemon_pid=None, thresholds=health.Thresholds())
    assert found.level == "critical"  # something is queued and no daemon runs
    assert f'<span class="level">{found.level}</span>' in body
    assert [r[:3] for r in rows(body, "criteria")] == [[c.level, c.name, c.text] for c in found.criteria]
    assert Store().monitor_row() is None


def test_a_shorter_window_leaves_older_days_out(history: dict[str, str]) -> None:
    body = page(client_for(), "?days=2")
    table = {r[0]: r[1:] for r in rows(body, "decisions")}
    assert list(table) == [history["yesterday"], history["today"]]
    assert "4 decisions in the last 2 days" in body
    assert history["three"] not in body


def test_text_from_the_store_is_escaped() -> None:
    store = Store()
    repo = f"/srv/{XSS}"
    store.record_flaky(repo, None, [(f"test_{XSS}", 3, 1)])
    store.config_invalid(repo, "0" * 64, f"bad key {XSS}")
    store.set_sink_state(f"slack:{XSS}", failures=2, next_at=time.time(), open_until=None,
                         last_error=f"HTTP 500 {XSS}", last_ok_at=None)
    body = page(client_for())
    assert "<script>alert" not in body
    escaped = html.escape(XSS)
    assert f"<td>test_{escaped}</td>" in body  # the flaky test
    assert f"bad key {escaped}" in body  # the config criterion's words
    assert f"<td>slack:{escaped}</td>" in body and f"HTTP 500 {escaped}" in body  # the sink


# -- real validations ------------------------------------------------------------------------


@pytest.mark.slow
def test_real_decisions_show_on_the_trends_page(tmp_path: Path) -> None:
    store = Store()
    project = registered(tmp_path, store, auto_merge=0.9, pr=0.85)
    fixed = apply(project, tmp_path, "fix", project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))
    held = apply(project, tmp_path, "held", project.make_patch({"calc.py": TESTS_FAIL}))
    assert fixed["state"] == "merged" and held["state"] == "awaiting_review"
    body = page(client_for())
    today = day_of(time.time())
    table = {r[0]: r[1:] for r in rows(body, "decisions")}
    assert table[today] == ["1", "1", "2", "50%"]  # auto_merge, review, all, rate
    assert sum(int(r[1]) for r in rows(body, "histogram")) == 2
    assert rows(body, "waiting")[1][-2] == "1"  # one awaiting review
    assert rows(body, "times")[-1][1] == "2"  # two validations today
    raised = [a.kind for a in Store().alerts()]
    kinds = re.findall(r"<th>(\w+)</th>", body.split('class="numbers alerts"')[1].split("</thead>")[0])[1:-1]
    alerts = dict(zip(kinds, rows(body, "alerts")[-1][1:-1], strict=True))
    for kind in set(raised):
        assert alerts[kind] == str(raised.count(kind)), kind
    chart = svg(body, "confidence")
    assert f'x1="{at(0.9)}" y1="{charts.TOP}" x2="{at(0.9)}"' in chart
    assert f'x1="{at(0.85)}" y1="{charts.TOP}" x2="{at(0.85)}"' in chart
    status = json.loads(cli("status", "--json").stdout)
    assert status["decided"] == 2 and status["auto_merged"] == 1
