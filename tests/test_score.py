"""score.compute and check_score: check outcomes and configuration in, a Confidence out."""
from __future__ import annotations

import pytest

from errauto_daemon.checks import CheckResult
from errauto_daemon.config import CheckConfig, Config
from errauto_daemon.domain import CheckStatus
from errauto_daemon.score import check_score, compute

TESTS = CheckConfig("tests", ("pytest",), weight=3.0, gate=True)
LINT = CheckConfig("lint", ("ruff",), weight=1.0)
COVERAGE = CheckConfig("coverage", ("cov",), weight=1.0, kind="coverage", tolerance=5.0)


def result(name: str, status: str = "passed", *, value: float | None = None, detail: str = "ok") -> CheckResult:
    return CheckResult(name, CheckStatus(status), 0 if status == CheckStatus.PASSED else 1, 1.5, f"/logs/{name}.log", detail, value)


@pytest.mark.parametrize("status, value, baseline, expected", [
    ("passed", None, None, (1.0, "ok")),
    ("failed", None, None, (0.0, "ok")),
    ("timeout", None, None, (0.0, "ok")),
    ("passed", 80.0, None, (1.0, "80.0% (no base coverage to compare)")),
    ("passed", 82.0, 80.0, (1.0, "82.0% (+2.0% vs base)")),
    ("passed", 78.0, 80.0, (0.6, "-2.0%")),
    ("passed", 70.0, 80.0, (0.0, "-10.0%")),  # beyond the tolerance: 0, never negative
    ("failed", 90.0, 80.0, (0.0, "ok")),  # a failed coverage run scores nothing
])
def test_check_score(status: str, value: float | None, baseline: float | None,
                     expected: tuple[float, str]) -> None:
    score, detail = check_score(COVERAGE, result("coverage", status, value=value), baseline)
    assert (round(score, 6), detail) == expected


@pytest.mark.parametrize("statuses, value, gates", [
    ({"tests": "passed", "lint": "passed"}, 1.0, ()),
    ({"tests": "passed", "lint": "failed"}, 0.75, ()),
    ({"tests": "failed", "lint": "passed"}, 0.25, ("tests must pass to auto-merge (ok)",)),
    ({"lint": "passed"}, 0.25, ("tests must pass to auto-merge (did not run)",)),
    ({}, 0.0, ("tests must pass to auto-merge (did not run)",)),
])
def test_the_confidence_is_the_weighted_mean_and_a_gate_that_did_not_pass_is_hit(
        statuses: dict[str, str], value: float, gates: tuple[str, ...]) -> None:
    config = Config(target="main", checks=(TESTS, LINT))
    confidence = compute(config, [result(name, status) for name, status in statuses.items()])
    assert confidence.value == value
    assert confidence.gates == gates and confidence.gates_hit == gates
    assert [(p.name, p.weight) for p in confidence.parts] == [("tests", 0.75), ("lint", 0.25)]


def test_a_missing_check_is_a_part_that_did_not_run() -> None:
    confidence = compute(Config(target="main", checks=(TESTS, LINT)), [result("tests")])
    lint = confidence.parts[1]
    assert (lint.status, lint.score, lint.detail, lint.duration) == ("missing", 0.0, "did not run", 0.0)


def test_without_a_gate_check_the_configuration_itself_is_a_gate_but_not_one_hit() -> None:
    confidence = compute(Config(target="main", checks=(LINT,)), [result("lint")])
    assert confidence.value == 1.0
    assert confidence.gates == ("no tests check is configured: auto-merge needs one",)
    assert confidence.gates_hit == ()


def test_no_checks_at_all_score_zero() -> None:
    assert compute(Config(target="main"), []).value == 0.0


@pytest.mark.parametrize("protected, shown", [
    (("a",), "a"),
    (("a", "b", "c"), "a, b, c"),
    (("a", "b", "c", "d", "e"), "a, b, c and 2 more"),
])
def test_protected_paths_are_a_gate_hit(protected: tuple[str, ...], shown: str) -> None:
    confidence = compute(Config(target="main", checks=(TESTS,)), [result("tests")], protected=protected)
    expected = f"touches protected paths ({shown}): never merged without a person"
    assert confidence.gates == (expected,) and confidence.gates_hit == (expected,)


def test_coverage_is_scored_against_its_baseline_and_the_thresholds_come_from_the_config() -> None:
    config = Config(target="main", auto_merge_threshold=0.9, pr_threshold=0.5, checks=(TESTS, COVERAGE))
    confidence = compute(config, [result("tests"), result("coverage", value=77.5)], baselines={"coverage": 80.0},
                         review_only=("a submodule changes",), notes=("reused",))
    assert confidence.value == pytest.approx(0.75 + 0.25 * 0.5)
    assert (confidence.auto_merge_threshold, confidence.pr_threshold) == (0.9, 0.5)
    assert confidence.review_only == ("a submodule changes",) and confidence.notes == ("reused",)
    assert confidence.summary() == "0.88: coverage -2.5% cost 0.12; auto-merge needs 0.90"
