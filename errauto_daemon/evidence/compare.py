"""A patch's per-test results against its base's: what it broke, what it fixed,
what was already broken, and which tests that passed on the base no longer
ran (skipped, xfailed, deselected or gone)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from errauto_daemon.domain import TestOutcome
from errauto_daemon.evidence.junit import TestReport, TestResult

BAD = (TestOutcome.FAILED, TestOutcome.ERROR)
_NO_VERDICT = (TestOutcome.SKIPPED, TestOutcome.XFAILED)


@dataclass(frozen=True)
class NotRun:
    """A test that passed on the base and gave no verdict with the patch."""

    id: str
    now: TestResult | None  # None: the report does not name it any more

    @property
    def how(self) -> str:
        if self.now is None:
            return "no longer runs"
        word = "is now skipped" if self.now.outcome is TestOutcome.SKIPPED else "is now expected to fail"
        return word + (f" ({self.now.message})" if self.now.message else "")


@dataclass(frozen=True)
class TestDiff:
    __test__ = False

    newly_failing: tuple[TestResult, ...]  # passed on the base (or is new), fails or errors now
    fixed: tuple[TestResult, ...]  # failed on the base, passes now
    still_failing: tuple[TestResult, ...]  # fails on both: not the patch's doing
    not_run: tuple[NotRun, ...]  # passed on the base, no verdict now
    new: tuple[TestResult, ...]  # not on the base at all
    base_ran: int  # tests that ran to a verdict on the base
    flaky: tuple[str, ...] = ()  # newly failing at first, passed when run again

    def with_reruns(self, reruns: Mapping[str, TestOutcome]) -> TestDiff:
        """The same comparison once the newly failing tests were run again: one
        that passed on any rerun is flaky, not the patch's failure."""
        flaky = tuple(t.id for t in self.newly_failing if reruns.get(t.id) is TestOutcome.PASSED)
        return TestDiff(tuple(t for t in self.newly_failing if t.id not in flaky), self.fixed,
                        self.still_failing, self.not_run, self.new, self.base_ran, self.flaky + flaky)


def compare(base: Mapping[str, TestOutcome], now: TestReport) -> TestDiff:
    """`now` against the base's outcomes (`TestReport.outcomes()`, or what the cache kept)."""
    newly: list[TestResult] = []
    fixed: list[TestResult] = []
    still: list[TestResult] = []
    new: list[TestResult] = []
    passed = TestOutcome.PASSED
    for node, result in now.tests.items():
        outcome = result.outcome
        if outcome is passed:
            if node not in base:
                new.append(result)
            elif base[node] in BAD:
                fixed.append(result)
            continue
        earlier = base.get(node)
        if earlier is None:
            new.append(result)
            if outcome in BAD:
                newly.append(result)
        elif outcome in BAD:
            (still if earlier in BAD else newly).append(result)
    not_run: list[NotRun] = []
    base_ran = 0
    for node, earlier in base.items():
        if earlier is passed:
            base_ran += 1
            later = now.tests.get(node)
            if later is None or later.outcome in _NO_VERDICT:
                not_run.append(NotRun(node, later))
        elif earlier is TestOutcome.FAILED:
            base_ran += 1
    return TestDiff(_by_id(newly), _by_id(fixed), _by_id(still),
                    tuple(sorted(not_run, key=lambda n: n.id)), _by_id(new), base_ran)


def _by_id(results: list[TestResult]) -> tuple[TestResult, ...]:
    return tuple(sorted(results, key=lambda t: t.id))
