"""The score's picture: a stored explanation in, the bar's segments and the threshold lines out."""
from __future__ import annotations

import pytest

from errauto_daemon.checks import CheckResult
from errauto_daemon.config import CheckConfig, Config
from errauto_daemon.domain import CheckStatus
from errauto_daemon.score import compute
from errauto_daemon.web import scorechart
from errauto_daemon.web.scorechart import PAD, WIDTH, x_of

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

SCALE = WIDTH - 2 * PAD


def explanation(passed: dict[str, bool], weights: dict[str, float]) -> dict:
    """What a real validation stores: `score.compute`'s Confidence as JSON."""
    config = Config(target="main", checks=tuple(CheckConfig(name=n, command=("true",), weight=w, gate=(n == "tests"))
                                 for n, w in weights.items()),
                    auto_merge_threshold=0.95, pr_threshold=0.6)
    results = [CheckResult(name=n, status=CheckStatus.PASSED if ok else CheckStatus.FAILED,
                           exit_code=0 if ok else 1, duration=1.0, detail="ok" if ok else "exit code 1", log_path="")
               for n, ok in passed.items()]
    return compute(config, results).to_json()


def test_what_each_check_earned_comes_first_then_what_each_lost() -> None:
    stored = explanation({"tests": True, "lint": False, "types": True}, {"tests": 2, "lint": 1, "types": 1})
    chart = scorechart.chart(stored)
    assert chart is not None
    assert [(s.part.check, s.earned) for s in chart.segments] == [("tests", True), ("types", True), ("lint", False)]
    assert [s.width for s in chart.segments] == pytest.approx([0.5 * SCALE, 0.25 * SCALE, 0.25 * SCALE], abs=0.02)
    assert [s.x for s in chart.segments] == pytest.approx([PAD, PAD + 0.5 * SCALE, PAD + 0.75 * SCALE], abs=0.02)
    assert chart.confidence == pytest.approx(0.75) and chart.confidence_x == pytest.approx(x_of(0.75))
    assert [s.css for s in chart.segments] == ["earned part-0", "earned part-2", "lost status-failed"]


def test_the_thresholds_are_lines_where_their_values_lie() -> None:
    chart = scorechart.chart(explanation({"tests": True, "lint": False}, {"tests": 3, "lint": 1}))
    assert chart is not None
    marks = {t.key: t for t in chart.thresholds}
    assert marks["auto_merge"].x == pytest.approx(PAD + 0.95 * SCALE, abs=0.01)
    assert marks["pull_request"].x == pytest.approx(PAD + 0.6 * SCALE, abs=0.01)
    assert (marks["auto_merge"].cleared, marks["pull_request"].cleared) == (False, True)  # 0.75
    assert marks["auto_merge"].label_y < chart.bar_top < marks["pull_request"].label_y  # one above, one below
    assert marks["auto_merge"].anchor == "end"  # near the right edge its label ends at the line


def test_its_words_say_what_it_shows() -> None:
    chart = scorechart.chart(explanation({"tests": False, "lint": True}, {"tests": 1, "lint": 1}))
    assert chart is not None
    assert chart.title == "confidence 0.50 of 1; auto-merge needs 0.95; pull request needs 0.60"
    assert chart.desc == "tests (failed): 0.00 of 0.50; lint (passed): 0.50 of 0.50"
    assert [s.words for s in chart.segments] == ["lint earned 0.50 (passed)", "tests lost 0.50 (failed)"]


def test_nothing_to_draw_without_parts() -> None:
    assert scorechart.chart(None) is None
    assert scorechart.chart({}) is None
    assert scorechart.chart(explanation({}, {})) is None  # no checks configured


def test_values_outside_the_bar_are_kept_on_it() -> None:
    assert (x_of(-0.5), x_of(0), x_of(1), x_of(7)) == (PAD, PAD, WIDTH - PAD, WIDTH - PAD)
