"""Per-test results from a real pytest run's JUnit XML report, and from hostile reports."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from errauto_daemon.domain import TestOutcome
from errauto_daemon.evidence.junit import MAX_REPORT_BYTES, ReportError, parse_report, read_report

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

SUITE = {
    "tests/test_app.py": """
        import unittest

        import pytest

        def test_ok():
            assert 1

        def test_fails():
            assert 1 == 2, "one is not two"

        @pytest.mark.skip(reason="flaky")
        def test_skipped():
            pass

        @pytest.mark.xfail(reason="known bug")
        def test_expected_to_fail():
            assert 0

        @pytest.mark.xfail(strict=True)
        def test_strict_xpass():
            pass

        @pytest.mark.parametrize("x", [1, "a b", "c::d"])
        def test_param(x):
            pass

        class TestGroup:
            def test_method(self):
                pass

        class Legacy(unittest.TestCase):
            def test_unittest_fails(self):
                self.assertEqual(1, 2)

            @unittest.skip("not here")
            def test_unittest_skipped(self):
                pass

        @pytest.fixture
        def broken():
            raise RuntimeError("setup boom")

        def test_setup_error(broken):
            pass
    """,
    "tests/pkg/__init__.py": "",
    "tests/pkg/test_deep.py": """
        def test_in_a_package():
            assert True
    """,
}


def run_pytest(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    report = root / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                    "tests"], cwd=root, capture_output=True, timeout=120)
    return report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("project")
    return root, run_pytest(root, SUITE)


def test_every_outcome_of_a_real_run_under_its_node_id(report: tuple[Path, Path]) -> None:
    root, path = report
    tests = read_report(path, root).tests
    outcomes = {node: t.outcome for node, t in tests.items()}
    assert outcomes == {
        "tests/test_app.py::test_ok": TestOutcome.PASSED,
        "tests/test_app.py::test_fails": TestOutcome.FAILED,
        "tests/test_app.py::test_skipped": TestOutcome.SKIPPED,
        "tests/test_app.py::test_expected_to_fail": TestOutcome.XFAILED,
        "tests/test_app.py::test_strict_xpass": TestOutcome.FAILED,
        "tests/test_app.py::test_param[1]": TestOutcome.PASSED,
        "tests/test_app.py::test_param[a b]": TestOutcome.PASSED,
        "tests/test_app.py::test_param[c::d]": TestOutcome.PASSED,
        "tests/test_app.py::TestGroup::test_method": TestOutcome.PASSED,
        "tests/test_app.py::Legacy::test_unittest_fails": TestOutcome.FAILED,
        "tests/test_app.py::Legacy::test_unittest_skipped": TestOutcome.SKIPPED,
        "tests/test_app.py::test_setup_error": TestOutcome.ERROR,
        "tests/pkg/test_deep.py::test_in_a_package": TestOutcome.PASSED,
    }
    assert all(t.file == node.split("::")[0] for node, t in tests.items())


def test_a_failure_says_why_and_where(report: tuple[Path, Path]) -> None:
    root, path = report
    tests = read_report(path, root).tests
    fails = tests["tests/test_app.py::test_fails"].message
    assert "AssertionError: one is not two" in fails and "tests/test_app.py:10: AssertionError" in fails
    assert "AssertionError: 1 != 2" in tests["tests/test_app.py::Legacy::test_unittest_fails"].message
    assert "setup boom" in tests["tests/test_app.py::test_setup_error"].message
    assert tests["tests/test_app.py::test_skipped"].message == "flaky"


def test_counts_and_selection(report: tuple[Path, Path]) -> None:
    root, path = report
    parsed = read_report(path, root)
    assert parsed.counts() == {"passed": 6, "failed": 3, "error": 1, "skipped": 2, "xfailed": 1}
    assert [t.id for t in parsed.with_outcome(TestOutcome.ERROR)] == ["tests/test_app.py::test_setup_error"]


def test_a_collection_error_is_an_error_of_its_module(tmp_path: Path) -> None:
    path = run_pytest(tmp_path, {"tests/test_x.py": "import not_a_module_anywhere\n"})
    tests = read_report(path, tmp_path).tests
    assert [(t.id, t.outcome) for t in tests.values()] == [("tests.test_x", TestOutcome.ERROR)]
    assert "No module named 'not_a_module_anywhere'" in tests["tests.test_x"].message


def test_a_file_attribute_names_the_module_directly() -> None:
    xml = (b'<testsuite><testcase classname="tests.test_a.K" name="t" file="tests/test_a.py" time="0.5"/>'
           b'<testcase classname="x" name="u" file="/etc/passwd"/></testsuite>')
    tests = parse_report(xml).tests
    assert tests["tests/test_a.py::K::t"].duration == 0.5
    assert "x::u" in tests  # an absolute path is not trusted as a file name


def test_a_test_named_twice_keeps_its_worst_outcome() -> None:
    xml = (b'<testsuites><testsuite><testcase classname="a" name="t"/>'
           b'<testcase classname="a" name="t"><error message="teardown failed"/></testcase>'
           b'<testcase classname="a" name="t"/></testsuite></testsuites>')
    assert parse_report(xml).tests["a::t"].outcome is TestOutcome.ERROR


@pytest.mark.parametrize("data, reason", [
    (b"", "not well-formed XML"),
    (b"<html><body>no</body></html>", "not a JUnit report (its root is <html>)"),
    (b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
     b'<testsuite><testcase name="&b;"/></testsuite>', "not well-formed XML"),
    (b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<testsuite><testcase name="&x;"/></testsuite>', "not well-formed XML"),
    (b"<testsuite><testcase name='t'>", "not well-formed XML"),
    # Starts as pytest's reports do, then declares entities: still refused.
    (b'<?xml version="1.0" encoding="utf-8"?><!DOCTYPE t [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
     b'<testsuite><testcase name="&b;"/></testsuite>', "not well-formed XML"),
    (b'<testsuite><testcase name="t"/></testsuite><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
     "not well-formed XML"),
])
def test_hostile_or_broken_reports_are_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ReportError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_report(data)


def test_a_report_in_another_encoding_reads_the_same() -> None:
    body = ('<testsuite><testcase classname="a" name="tést"/>'
            '<testcase classname="a" name="u"><failure message="m">E   assert 1 == 2</failure></testcase></testsuite>')
    plain = parse_report(b'<?xml version="1.0" encoding="utf-8"?>' + body.encode())
    wide = parse_report('<?xml version="1.0" encoding="utf-16"?>'.encode("utf-16") + body.encode("utf-16")[2:])
    assert plain == wide
    assert plain.tests["a::tést"].outcome is TestOutcome.PASSED
    assert plain.tests["a::u"].message == "assert 1 == 2"


def test_a_missing_or_oversized_report_is_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no test report at report.xml"):
        read_report(tmp_path / "report.xml", tmp_path)
    big = tmp_path / "big.xml"
    with open(big, "wb") as f:
        f.truncate(MAX_REPORT_BYTES + 1)
    with pytest.raises(ReportError, match="larger than 64 MiB"):
        read_report(big, tmp_path)


def test_long_failure_text_is_cut_short() -> None:
    text = "E   " + "x" * 5000
    xml = f'<testsuite><testcase classname="a" name="t"><failure>{text}</failure></testcase></testsuite>'.encode()
    assert len(parse_report(xml).tests["a::t"].message) <= 800
