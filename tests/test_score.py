"""score.compute and check_score: check outcomes and configuration in, a Confidence out."""
from __future__ import annotations

import pytest

from errauto_daemon.checks import CheckResult
from errauto_daemon.config import CheckConfig, Config, EvidenceConfig
from errauto_daemon.domain import CheckStatus
from errauto_daemon.evidence.record import CheckEvidence, Evidence, Failure, Flake, LinesEvidence
from errauto_daemon.score import Confidence, check_score, compute

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

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
    # Without a test report the tests check is judged by its exit code, and the notes say so.
    assert confidence.review_only == ("a submodule changes",) and confidence.notes == (
        "reused", "evidence is coarse: tests reports no per-test results, only its exit code")
    assert confidence.summary() == "0.88: coverage -2.5% cost 0.12; auto-merge needs 0.90"


# -- per-test, test-code and line evidence -------------------------------------------------

def judged(ev: CheckEvidence | None = None, *, weakened: tuple[str, ...] = (), lines: LinesEvidence | None = None,
           status: str = "failed", min_lines: float | None = None) -> Confidence:
    config = Config(target="main", checks=(TESTS, LINT), evidence=EvidenceConfig(min_changed_lines_covered=min_lines))
    evidence = Evidence({"tests": ev} if ev is not None else {}, weakened, lines)
    return compute(config, [result("tests", status, detail="exit 1"), result("lint")], evidence=evidence)


def test_a_test_the_patch_breaks_scores_the_check_zero_and_is_named() -> None:
    c = judged(CheckEvidence("tests", newly_failing=(Failure("t.py::low", "assert -1 == 0\nt.py:3: E"),),
                             fixed=("t.py::old",), counts={"passed": 5, "failed": 1}))
    assert c.parts[0].score == 0.0
    assert c.parts[0].detail == "fixes t.py::old; breaks t.py::low: assert -1 == 0"
    assert c.gates_hit == ("tests must pass to auto-merge (fixes t.py::old; breaks t.py::low: assert -1 == 0)",)


def test_a_test_failing_on_main_too_is_not_counted_but_cannot_vouch_for_an_auto_merge() -> None:
    c = judged(CheckEvidence("tests", still_failing=("t.py::old",), counts={"passed": 5, "failed": 1}))
    assert c.value == 1.0 and c.parts[0].detail == "5 passed, 1 fail on main too"
    assert c.gates == ("tests fails on main too (t.py::old): it cannot vouch for an auto-merge",)
    assert c.gates_hit == ()
    assert c.summary() == ("1.00; no auto-merge: tests fails on main too (t.py::old): it cannot vouch for an "
                           "auto-merge")


def test_a_flaky_test_is_neither_blamed_nor_merged_on() -> None:
    c = judged(CheckEvidence("tests", flaky=(Flake("t.py::t", 3, 1),), counts={"passed": 6}), status="passed")
    assert c.value == 1.0 and c.gates == ("flaky: t.py::t failed 1 of 3 runs",) and c.gates_hit == ()


def test_a_failing_exit_with_no_failing_test_in_the_report_still_fails() -> None:
    c = judged(CheckEvidence("tests", counts={"passed": 6}))
    assert c.parts[0].score == 0.0 and c.parts[0].detail == "exit 1 with no failing test in its report"


def test_weakened_tests_and_tests_without_a_verdict_are_gates_a_person_overrules() -> None:
    c = judged(CheckEvidence("tests", not_run=("t.py::low is now skipped (flaky)",), counts={"passed": 5}),
               weakened=("t.py:4 adds @pytest.mark.skip to low, which passed on the base",), status="passed")
    assert c.value == 1.0
    assert c.gates_hit == ("weakens the tests: t.py::low is now skipped (flaky)",
                           "weakens the tests: t.py:4 adds @pytest.mark.skip to low, which passed on the base")


def test_changed_lines_below_the_minimum_and_unknown_lines() -> None:
    lines = LinesEvidence(4, 3, ("app.py:9 not run by any test",))
    assert judged(lines=lines, status="passed", min_lines=1.0).gates_hit == (
        "the tests ran 3 of 4 changed lines (app.py:9 not run by any test); [evidence] asks for 100%",)
    assert judged(lines=lines, status="passed", min_lines=0.75).gates_hit == ()
    assert judged(lines=lines, status="passed").gates_hit == ()  # reported, not required
    unknown = judged(status="passed", min_lines=1.0)
    assert unknown.gates_hit == () and unknown.gates[0].startswith("the changed lines' coverage is unknown")


def test_without_a_report_the_evidence_is_coarse_and_scoring_is_as_before() -> None:
    c = judged(status="passed")
    assert c.value == 1.0 and c.notes == (
        "evidence is coarse: tests reports no per-test results, only its exit code",)
    broken = judged(CheckEvidence("tests", problem="no test report at .errauto/junit.xml"))
    assert broken.parts[0].score == 0.0 and broken.parts[0].detail == "exit 1"
    assert broken.notes == ("evidence is coarse: tests: no test report at .errauto/junit.xml",)
