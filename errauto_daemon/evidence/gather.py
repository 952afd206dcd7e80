"""Turning what a validation has (trees, the reports its checks wrote) into
`Evidence`. The validation runs the checks; this reads and compares."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pygit2

from errauto_daemon.domain import TestOutcome
from errauto_daemon.evidence import tamper
from errauto_daemon.evidence.compare import compare
from errauto_daemon.evidence.junit import ReportError, TestReport, read_report
from errauto_daemon.evidence.record import CheckEvidence, Flake

MAX_TEXT_BYTES = 2 * 1024 * 1024  # test files read for the tamper check; larger ones are left to the runner
# Files whose change `tamper` reads besides test files: the runner's configuration.
_RUNNER_FILES = {"pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "Makefile",
                 "GNUmakefile", "makefile", "noxfile.py"}


def report_in(root: Path, rel: str) -> TestReport:
    """A check's JUnit report in the worktree; ReportError when it is missing, broken, or a
    link out of the worktree (the patch's code wrote it: it may point anywhere)."""
    path = _inside(root, rel)
    if path is None:
        raise ReportError(f"the test report {rel} is a link or lies outside the worktree")
    return read_report(path, root)


def read_inside(root: Path, rel: str, limit: int) -> bytes:
    """A report's bytes, refusing links and anything outside the worktree."""
    path = _inside(root, rel)
    if path is None:
        raise OSError(f"{rel} is a link or lies outside the worktree")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{rel} is larger than {limit >> 20} MiB")
    return data


def _inside(root: Path, rel: str) -> Path | None:
    """`root / rel`, or None when it is a link or resolves outside `root` (the
    patch's code wrote what is there: it may point anywhere)."""
    path = root / rel
    try:
        if path.is_symlink():
            return None
        path.resolve().relative_to(root.resolve())
        return path
    except (ValueError, OSError):
        return None


def report_to_json(report: TestReport) -> dict[str, str]:
    """A base report as the cache keeps it: each test's outcome."""
    return {node: t.outcome.value for node, t in report.tests.items()}


_OUTCOMES = {o.value: o for o in TestOutcome}


def outcomes_from_json(data: Mapping[str, str]) -> dict[str, TestOutcome]:
    """The cached form read back; a word errauto does not know is refused (ValueError)."""
    try:
        return {node: _OUTCOMES[outcome] for node, outcome in data.items()}
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} is not a test outcome") from None


def rerun_command(command: Sequence[str], ids: Sequence[str]) -> tuple[str, ...] | None:
    """The check's command narrowed to `ids`, when its runner takes node ids (pytest)."""
    words = [os.path.basename(w) for w in command[:3]]
    if "pytest" in words or "py.test" in words or ("-m" in command[:3] and "pytest" in command[:4]):
        return (*command, *ids)
    return None


def per_test(check: str, base: Mapping[str, TestOutcome] | None, now: TestReport,
             reruns: Mapping[str, Sequence[TestOutcome]]) -> CheckEvidence:
    """One check's evidence: `now` against `base` (None: no base to compare, every
    failure counts), with the outcomes of the newly failing tests' reruns."""
    diff = compare(base if base is not None else {}, now)
    flakes = []
    passed_again: dict[str, TestOutcome] = {}
    for failure in diff.newly_failing:
        outcomes = reruns.get(failure.id, ())
        if TestOutcome.PASSED in outcomes:
            passed_again[failure.id] = TestOutcome.PASSED
            failed = 1 + sum(1 for o in outcomes if o is not TestOutcome.PASSED)
            flakes.append(Flake(failure.id, 1 + len(outcomes), failed))
    diff = diff.with_reruns(passed_again)
    ev = CheckEvidence.from_diff(check, diff, now, flakes)
    if base is None:
        ev = dataclasses.replace(ev, base_missing=True)
    return ev


def file_changes(repo: pygit2.Repository, base_tree: str, result_tree: str,
                 globs: Sequence[str], reported: frozenset[str]) -> list[tamper.FileChange]:
    """The patch's test files and runner configuration, as text before and after."""
    old, new = repo[pygit2.Oid(hex=base_tree)], repo[pygit2.Oid(hex=result_tree)]
    if not isinstance(old, pygit2.Tree) or not isinstance(new, pygit2.Tree):
        raise ValueError(f"{base_tree} and {result_tree} must both be trees")
    out = []
    for delta in old.diff_to_tree(new).deltas:  # the deltas alone: no file's hunks are computed
        path = delta.new_file.path or delta.old_file.path
        name = path.rsplit("/", 1)[-1]
        top = "/" not in path
        if not (name in _RUNNER_FILES or path in reported or tamper.is_test_file(path, globs)
                or (top and (name.endswith(".pth") or name in tamper.SHADOWS))
                or path.split("/", 1)[0] in tamper.SHADOWS):
            continue
        before = text(repo, delta.old_file.id) if delta.status != pygit2.GIT_DELTA_ADDED else None
        after = text(repo, delta.new_file.id) if delta.status != pygit2.GIT_DELTA_DELETED else None
        if delta.status == pygit2.GIT_DELTA_RENAMED:
            out.append(tamper.FileChange(delta.old_file.path, before, None))
            before = None
        out.append(tamper.FileChange(path, before, after))
    return out


def text(repo: pygit2.Repository, oid: pygit2.Oid) -> str | None:
    blob = repo.get(oid)
    if not isinstance(blob, pygit2.Blob) or blob.size > MAX_TEXT_BYTES or blob.is_binary:
        return ""
    return blob.data.decode("utf-8", "replace")


def weakened(changes: Sequence[tamper.FileChange], globs: Sequence[str],
             bases: Sequence[Mapping[str, TestOutcome]], runners: frozenset[str] | None = None) -> tuple[str, ...]:
    """Each weakening, saying so when the test it weakens passed on the base; `runners`:
    the programs the checks run (None: not known)."""
    passed = {node for base in bases for node, outcome in base.items() if outcome is TestOutcome.PASSED}
    out = []
    for finding in tamper.findings(changes, globs, runners):
        text = str(finding)
        if finding.test is not None and finding.test in passed:
            text += ", which passed on the base"
        out.append(text)
    return tuple(out)
