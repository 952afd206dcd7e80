"""What one validation's check runs found beyond their exit codes, collected
as they run (the reports are read from the worktree before it is cleaned),
then turned into `Evidence`."""
from __future__ import annotations

import glob
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from errauto_daemon.checks import CheckResult
from errauto_daemon.config import CheckConfig, Config
from errauto_daemon.domain import CheckStatus, TestOutcome
from errauto_daemon.evidence import changed_lines, gather, tamper
from errauto_daemon.evidence.compare import compare
from errauto_daemon.evidence.junit import ReportError, TestReport
from errauto_daemon.evidence.record import CheckEvidence, Evidence, LinesEvidence

# Runs a check again with another command line (the k-th rerun); returns its result.
Rerun = Callable[[tuple[str, ...], int], CheckResult]


@dataclass
class Found:
    bases: dict[str, Mapping[str, str] | None] = field(default_factory=dict)  # check -> base outcomes
    reports: dict[str, TestReport | str] = field(default_factory=dict)  # check -> report, or why none
    reruns: dict[str, dict[str, list[TestOutcome]]] = field(default_factory=dict)
    line_data: Mapping[str, Any] | str | None = None  # coverage.py's files table, or why none
    _base_outcomes: dict[str, dict[str, TestOutcome]] = field(default_factory=dict)

    def base(self, check: str) -> dict[str, TestOutcome] | None:
        """The base's outcomes of `check`, read from the cached form once."""
        known = self._base_outcomes.get(check)
        if known is None:
            outcomes = self.bases.get(check)
            if outcomes is None:
                return None
            known = self._base_outcomes[check] = gather.outcomes_from_json(outcomes)
        return known

    def base_report(self, root: Path, check: CheckConfig) -> dict[str, str] | None:
        """The base run's per-test outcomes, as the cache keeps them (None: no usable report)."""
        if check.junit is None:
            return None
        try:
            return gather.report_to_json(gather.report_in(root, check.junit))
        except ReportError:
            return None

    def read(self, root: Path, check: CheckConfig, result: CheckResult, rerun: Rerun) -> None:
        """Read what `check` wrote; run its newly failing tests again (pytest node ids)."""
        if check.line_data is not None and self.line_data is None:
            try:
                self.line_data = changed_lines.read_coverage(
                    gather.read_inside(root, check.line_data, changed_lines.MAX_REPORT_BYTES))
            except OSError as exc:
                self.line_data = f"no line data at {check.line_data} ({exc.strerror or exc})"
            except changed_lines.CoverageReportError as exc:
                self.line_data = exc.reason
        if check.junit is None or result.status not in (CheckStatus.PASSED, CheckStatus.FAILED):
            return
        try:
            report = gather.report_in(root, check.junit)
        except ReportError as exc:
            self.reports[check.name] = exc.reason
            return
        self.reports[check.name] = report
        base = self.base(check.name)
        if base is None or check.reruns == 0:
            return
        failing = [t.id for t in compare(base, report).newly_failing]
        self._rerun(root, check, failing, rerun)

    def _rerun(self, root: Path, check: CheckConfig, failing: list[str], rerun: Rerun) -> None:
        outcomes = self.reruns.setdefault(check.name, {})
        for k in range(1, check.reruns + 1):
            command = gather.rerun_command(check.command, failing) if failing else None
            if command is None or check.junit is None:
                return
            rerun(command, k)
            try:
                again = gather.report_in(root, check.junit)
            except ReportError:
                return
            for node in failing:
                outcome = again.tests[node].outcome if node in again.tests else TestOutcome.ERROR
                outcomes.setdefault(node, []).append(outcome)
            failing = [n for n in failing if outcomes[n][-1] is not TestOutcome.PASSED]

    def evidence(self, repo: pygit2.Repository, config: Config, base_tree: str, result_tree: str) -> Evidence:
        checks: dict[str, CheckEvidence] = {}
        for name, report in self.reports.items():
            if isinstance(report, str):
                checks[name] = CheckEvidence(name, report)
                continue
            checks[name] = gather.per_test(name, self.base(name), report, self.reruns.get(name, {}))
        globs = config.evidence.test_files
        reported = frozenset(t.file for r in self.reports.values() if isinstance(r, TestReport)
                             for t in r.tests.values() if t.file)
        bases = [b for b in (self.base(name) for name in self.bases) if b is not None]
        # A reported file is a test file by its exact name (escaped: `[` in a name is not a pattern).
        test_globs = (*globs, *(glob.escape(path) for path in sorted(reported)))
        runners = tamper.runners_of(check.command for check in config.checks)
        weakened = gather.weakened(gather.file_changes(repo, base_tree, result_tree, globs, reported),
                                   test_globs, bases, runners)
        return Evidence(checks, weakened, self._lines(repo, base_tree, result_tree, test_globs))

    def _lines(self, repo: pygit2.Repository, base_tree: str, result_tree: str,
               globs: tuple[str, ...]) -> LinesEvidence | None:
        if self.line_data is None:
            return None
        if isinstance(self.line_data, str):
            return LinesEvidence(0, 0, (), self.line_data)
        tree = repo[pygit2.Oid(hex=result_tree)]
        if not isinstance(tree, pygit2.Tree):
            raise ValueError(f"{result_tree} is not a tree")

        def text_of(path: str) -> str | None:
            try:
                return gather.text(repo, tree[path].id)
            except KeyError:
                return None

        def is_test(path: str) -> bool:
            return tamper.is_test_file(path, globs)

        added = changed_lines.added_lines(repo, base_tree, result_tree,
                                          wanted=lambda path: path.endswith(".py") and not is_test(path))
        measured = changed_lines.measure(added, self.line_data, text_of=text_of, is_test=is_test)
        return LinesEvidence.of(measured)
