"""Reading a check's per-test results from a JUnit XML report.

pytest writes one with `--junitxml` (for unittest suites too); so do most
test runners of other languages. The report is written by the patch's own
test run, so it is untrusted: it is read with defusedxml (no entities, no
external references), its size is bounded, every text taken from it is cut
short, and a report that cannot be read is a reason, never an exception
that escapes. A report that starts as pytest writes one and has no DTD
anywhere is UTF-8 and cannot declare an entity; the standard library's C
parser reads it, about twice as fast, with nothing defusedxml would refuse.

A test is named by its node id, the name a person and `pytest` itself use
(`tests/test_app.py::TestClamp::test_low[3]`): pytest's report gives a
dotted `classname`, which is mapped back to a file by looking for the
module in the worktree.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, XMLParser

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from errauto_daemon.domain import TestOutcome

MAX_REPORT_BYTES = 64 * 1024 * 1024
MAX_TESTS = 200_000
MESSAGE_LINES = 8
MESSAGE_CHARS = 800

# Worse outcomes win when a report names one test twice (a rerun plugin, a
# teardown error after a pass).
_RANK = {TestOutcome.PASSED: 0, TestOutcome.XFAILED: 1, TestOutcome.SKIPPED: 2, TestOutcome.FAILED: 3,
         TestOutcome.ERROR: 4}


class ReportError(Exception):
    """The report is missing, too big or not a JUnit report; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TestResult:
    __test__ = False

    id: str  # the node id: tests/test_app.py::TestClamp::test_low[3]
    outcome: TestOutcome
    message: str = ""  # failures and errors: the first lines of why; skips: the reason
    duration: float = 0.0
    file: str | None = None  # the test's file, relative to the worktree, when known

    @property
    def ran(self) -> bool:
        """It ran to a verdict (a skipped or xfailed test says nothing about the code)."""
        return self.outcome in (TestOutcome.PASSED, TestOutcome.FAILED)


@dataclass(frozen=True)
class TestReport:
    """Every test a report names, by node id."""

    __test__ = False

    tests: Mapping[str, TestResult]

    def outcomes(self) -> dict[str, TestOutcome]:
        """Each test's outcome: what a comparison with a later run needs (and the cache keeps)."""
        return {node: t.outcome for node, t in self.tests.items()}

    def with_outcome(self, *outcomes: TestOutcome) -> list[TestResult]:
        return sorted((t for t in self.tests.values() if t.outcome in outcomes), key=lambda t: t.id)

    def counts(self) -> dict[str, int]:
        out = {o.value: 0 for o in TestOutcome}
        for t in self.tests.values():
            out[t.outcome] += 1
        return out


def read_report(path: Path, root: Path) -> TestReport:
    """The report at `path`, its tests named relative to the worktree `root`."""
    try:
        size = path.stat().st_size
    except OSError:
        raise ReportError(f"no test report at {_shown(path, root)}") from None
    if size > MAX_REPORT_BYTES:
        raise ReportError(f"the test report {_shown(path, root)} is larger than {MAX_REPORT_BYTES >> 20} MiB")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReportError(f"the test report {_shown(path, root)} cannot be read ({exc.strerror})") from None
    return parse_report(data, module_exists=lambda rel: (root / rel).is_file())


def parse_report(data: bytes, *, module_exists: Callable[[str], bool] = lambda rel: False) -> TestReport:
    """The tests of a JUnit XML document. `module_exists(path)` tells whether a
    relative path such as `tests/test_app.py` is a file (to name tests by it)."""
    try:
        top = _parse(data)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise ReportError(f"the test report is not well-formed XML ({_short(str(exc), 200)})") from None
    if top.tag not in ("testsuites", "testsuite"):
        raise ReportError(f"the test report is not a JUnit report (its root is <{_short(top.tag, 40)}>)")
    tests: dict[str, TestResult] = {}
    namer = _Namer(module_exists)
    for case in top.iter("testcase"):
        attrs = case.attrib
        name = attrs.get("name")
        if not name:
            continue
        node, file = namer.node_id(attrs.get("classname") or "", name, attrs.get("file"))
        outcome, message = _outcome(case) if len(case) else _PASSED
        known = tests.get(node)
        if known is None or _RANK[outcome] > _RANK[known.outcome]:
            tests[node] = TestResult(node, outcome, message, _duration(attrs.get("time")), file)
            if len(tests) > MAX_TESTS:
                raise ReportError(f"the test report names more than {MAX_TESTS} tests")
    return TestReport(tests)


_PASSED = (TestOutcome.PASSED, "")
# What pytest writes first. A report that starts so and declares no DTD is UTF-8 and
# can hold no entity, so the C parser reads it with nothing for defusedxml to refuse;
# anything else (another encoding, a DTD anywhere) is read by defusedxml.
_PLAIN_STARTS = (b'<?xml version="1.0" encoding="utf-8"?>', b"<testsuites", b"<testsuite")


def _parse(data: bytes) -> Element:
    if data.startswith(_PLAIN_STARTS) and b"<!DOCTYPE" not in data and b"<!ENTITY" not in data:
        parser = XMLParser()
        parser.feed(data)
        top: Element = parser.close()
        return top
    return fromstring(data)


def _outcome(case: Element) -> tuple[TestOutcome, str]:
    for child in case:
        tag = child.tag
        if tag == "failure":
            return TestOutcome.FAILED, _why(child)
        if tag == "error":
            return TestOutcome.ERROR, _why(child)
        if tag == "skipped":
            kind = TestOutcome.XFAILED if child.get("type") == "pytest.xfail" else TestOutcome.SKIPPED
            return kind, _short(child.get("message") or (child.text or "").strip(), MESSAGE_CHARS)
    return TestOutcome.PASSED, ""


def _why(element: Element) -> str:
    """The first lines of a failure: pytest's `E ` lines and where it failed, else the message."""
    text = element.text or ""
    lines = text.splitlines()
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    where = [line.strip() for line in lines[-3:] if _WHERE.match(line.strip())]
    picked = errors[:MESSAGE_LINES] + where[-1:]
    if not picked:
        picked = [line for line in (element.get("message") or text).splitlines() if line.strip()][:MESSAGE_LINES]
    return _short("\n".join(picked), MESSAGE_CHARS)


_WHERE = re.compile(r"^[\w./\\-]+:\d+: \w")  # tests/test_app.py:14: AssertionError


def _duration(text: str | None) -> float:
    try:
        value = float(text or 0)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value >= 0 else 0.0


class _Namer:
    """pytest's `classname` (`tests.test_app.TestClamp`) back to a node id, by
    finding the longest prefix that is a module in the worktree."""

    def __init__(self, module_exists: Callable[[str], bool]) -> None:
        self._exists = module_exists
        self._cache: dict[str, tuple[str, str | None]] = {}

    def node_id(self, classname: str, name: str, file: str | None) -> tuple[str, str | None]:
        if file and not os.path.isabs(file) and ".." not in file.split("/"):
            path = file.replace(os.sep, "/")
            return "::".join([path, *self._classes_after(classname, path), name]), path
        prefix, module = self._prefix(classname)
        return (f"{prefix}::{name}" if prefix else name), module

    def _prefix(self, classname: str) -> tuple[str, str | None]:
        """What comes before a test's name in its node id, and its module; once per classname."""
        known = self._cache.get(classname)
        if known is not None:
            return known
        parts = classname.split(".") if classname else []
        # Not a file errauto can find (another runner, a package layout it does
        # not know): the report's own names, still unique and stable.
        found: tuple[str, str | None] = (classname, None)
        for k in range(len(parts), 0, -1):
            candidate = "/".join(parts[:k]) + ".py"
            if self._exists(candidate):
                found = ("::".join([candidate, *parts[k:]]), candidate)
                break
        self._cache[classname] = found
        return found

    @staticmethod
    def _classes_after(classname: str, module: str) -> list[str]:
        dotted = module[:-3].replace("/", ".") if module.endswith(".py") else module
        if classname.startswith(dotted + "."):
            return classname[len(dotted) + 1:].split(".")
        return []


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
