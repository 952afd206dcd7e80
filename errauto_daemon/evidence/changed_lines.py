"""Whether the tests ran the lines a patch changed.

From coverage.py's JSON report (`coverage json`: per file, its
`executed_lines`, `missing_lines` and `excluded_lines`) and the lines the
patch added or changed (the diff of the base tree against the result tree,
so the numbers are where the lines really are after applying). Only code
counts: test files are left out, and a Python file's blank and comment
lines are not executable.

Honest about what did not run: a line coverage.py measured but the tests
did not execute is not run, whatever the reason (code for another Python
version or platform included); a line the patch excluded with a pragma
is not run too (a patch must not be able to hide its own lines); a Python
file the report does not name at all was never imported, so each of its
changed code lines is not run.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pygit2

MAX_REPORT_BYTES = 256 * 1024 * 1024


class CoverageReportError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FileLines:
    path: str
    changed: int  # executable lines the patch added or changed
    run: int  # of those, lines the tests executed
    not_run: tuple[int, ...]  # line numbers, ascending
    imported: bool = True  # False: coverage never saw the file


@dataclass(frozen=True)
class ChangedLines:
    files: tuple[FileLines, ...]

    @property
    def changed(self) -> int:
        return sum(f.changed for f in self.files)

    @property
    def run(self) -> int:
        return sum(f.run for f in self.files)

    @property
    def share(self) -> float | None:
        """The share of changed code lines the tests ran; None when the patch changed no code."""
        return self.run / self.changed if self.changed else None

    def not_run(self, limit: int = 20) -> list[str]:
        """`app.py:12-15, 20 not run by any test`, one per file (at most `limit`)."""
        out = []
        for f in self.files:
            if f.not_run:
                why = "never imported by the tests" if not f.imported else "not run by any test"
                out.append(f"{f.path}:{ranges(f.not_run)} {why}")
        return out[:limit]


def added_lines(repo: pygit2.Repository, base_tree: str, result_tree: str,
                wanted: Callable[[str], bool] = lambda path: True) -> dict[str, list[int]]:
    """The line numbers each file has added or changed in the result tree; only
    the files `wanted` accepts have their lines computed."""
    old, new = repo[pygit2.Oid(hex=base_tree)], repo[pygit2.Oid(hex=result_tree)]
    if not isinstance(old, pygit2.Tree) or not isinstance(new, pygit2.Tree):
        raise ValueError(f"{base_tree} and {result_tree} must both be trees")
    diff = old.diff_to_tree(new, context_lines=0)
    out: dict[str, list[int]] = {}
    for k, delta in enumerate(diff.deltas):
        path = delta.new_file.path
        if path is None or delta.status == pygit2.GIT_DELTA_DELETED or not wanted(path):
            continue
        patch = diff[k]
        if patch is None or patch.delta.is_binary:
            continue
        lines = [line.new_lineno for hunk in patch.hunks for line in hunk.lines if line.origin == "+"]
        if lines:
            out[path] = lines
    return out


def read_coverage(data: bytes) -> Mapping[str, Any]:
    """The `files` table of a coverage.py JSON report."""
    if len(data) > MAX_REPORT_BYTES:
        raise CoverageReportError(f"the coverage report is larger than {MAX_REPORT_BYTES >> 20} MiB")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise CoverageReportError("the coverage report is not JSON") from None
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict):
        raise CoverageReportError("the coverage report has no line data (run `coverage json`, "
                                  "or pytest-cov's `--cov-report=json`)")
    return files


def measure(added: Mapping[str, Sequence[int]], files: Mapping[str, Any], *,
            text_of: Callable[[str], str | None], is_test: Callable[[str], bool]) -> ChangedLines:
    """How many of the added code lines the tests ran. `text_of(path)` gives a
    file's text in the result (to tell code from blank and comment lines of a
    file coverage did not see); `is_test(path)` leaves test files out."""
    by_path = _normalised(files)
    out = []
    for path in sorted(added):
        if not path.endswith(".py") or is_test(path):
            continue
        lines = sorted(set(added[path]))
        entry = by_path.get(path)
        if entry is None:
            code = _code_lines(text_of(path), lines)
            if code:
                out.append(FileLines(path, len(code), 0, tuple(code), imported=False))
            continue
        executed = _ints(entry.get("executed_lines"))
        measured = executed | _ints(entry.get("missing_lines")) | _ints(entry.get("excluded_lines"))
        changed = [n for n in lines if n in measured]
        run = [n for n in changed if n in executed]
        if changed:
            out.append(FileLines(path, len(changed), len(run), tuple(n for n in changed if n not in executed)))
    return ChangedLines(tuple(out))


def ranges(numbers: Iterable[int]) -> str:
    """1, 2, 3, 7 -> `1-3, 7`."""
    out: list[str] = []
    start = prev = None
    for n in sorted(numbers):
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = n
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ", ".join(out)


def _normalised(files: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Report paths as the worktree-relative paths the diff uses (coverage
    writes them relative to where it ran, with the platform's separator)."""
    out: dict[str, Mapping[str, Any]] = {}
    for name, entry in files.items():
        if isinstance(name, str) and isinstance(entry, dict):
            out[name.replace("\\", "/").removeprefix("./")] = entry
    return out


def _ints(value: Any) -> set[int]:
    return {n for n in value if isinstance(n, int)} if isinstance(value, list) else set()


def _code_lines(text: str | None, lines: Sequence[int]) -> list[int]:
    if text is None:
        return list(lines)
    source = text.splitlines()
    code = []
    for n in lines:
        stripped = source[n - 1].strip() if 0 < n <= len(source) else ""
        if stripped and not stripped.startswith("#"):
            code.append(n)
    return code
