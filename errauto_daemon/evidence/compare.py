"""A patch's per-test results against its base's: what it broke, what it fixed,
what was already broken, and which tests that passed on the base no longer
ran (skipped, xfailed, deselected or gone).

A parametrized case whose id pytest numbered by its position (`args3`,
`expected15`: a value it does not spell out) takes a new id when a case is
inserted before it. Such ids that vanished are not "no longer run" when the
test now has at least as many cases of each shape, every one of them passing:
the cases moved. This lets no weakening through that ids could show: a case
changed in place keeps its positional id either way.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
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
    moved = _renumbered([n.id for n in not_run if n.now is None], base, now)
    not_run = [n for n in not_run if n.id not in moved]
    return TestDiff(_by_id(newly), _by_id(fixed), _by_id(still),
                    tuple(sorted(not_run, key=lambda n: n.id)), _by_id(new), base_ran)


# A part of a parametrized id that pytest numbered: the argument's name and the case's position.
_POSITIONAL = re.compile(r"(?<=[\[-])([A-Za-z_][A-Za-z_0-9]*?)(\d+)(?=-|\]$)")


def _renumbered(vanished: Iterable[str], base: Mapping[str, TestOutcome], now: TestReport) -> set[str]:
    """The vanished ids that are positional cases of a test whose cases moved (see the module)."""
    families: dict[str, list[str]] = defaultdict(list)
    for node in vanished:
        if node.endswith("]") and "[" in node:
            families[node.split("[", 1)[0]].append(node)
    out: set[str] = set()
    for family, ids in families.items():
        before = [n for n in base if n.startswith(family + "[")]
        after = [n for n in now.tests if n.startswith(family + "[")]
        if any(now.tests[n].outcome is not TestOutcome.PASSED for n in after):
            continue
        if not (_numbered_by_position(before) and _numbered_by_position(after)):
            continue
        shapes, shapes_now = Counter(map(_shape, before)), Counter(map(_shape, after))
        if all(shapes_now[shape] >= count for shape, count in shapes.items()):
            out.update(ids)
    return out


def _numbered_by_position(ids: list[str]) -> bool:
    """Whether each numbered argument's numbers over these ids run 0, 1, ... without a gap."""
    numbers: dict[str, set[int]] = defaultdict(set)
    for node in ids:
        for match in _POSITIONAL.finditer(node):
            numbers[match.group(1)].add(int(match.group(2)))
    return bool(numbers) and all(found == set(range(max(found) + 1)) for found in numbers.values())


def _shape(node: str) -> str:
    return _POSITIONAL.sub(lambda m: m.group(1) + "#", node)


def _by_id(results: list[TestResult]) -> tuple[TestResult, ...]:
    return tuple(sorted(results, key=lambda t: t.id))
