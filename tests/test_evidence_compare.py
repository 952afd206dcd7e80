"""A patch's tests against its base's, from two real pytest runs of a small project."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from errauto_daemon.domain import TestOutcome
from errauto_daemon.evidence.compare import compare
from errauto_daemon.evidence.junit import TestReport, read_report

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

APP = textwrap.dedent("""
    def clamp(x, lo, hi):
        return max(lo, min(x, hi))

    def double(x):
        return x * 3  # wrong on main
""")
TESTS = textwrap.dedent("""
    from app import clamp, double

    def test_low():
        assert clamp(-1, 0, 10) == 0

    def test_high():
        assert clamp(11, 0, 10) == 10

    def test_double():
        assert double(2) == 4

    def test_broken_elsewhere():
        assert open("missing-fixture.txt").read()
""")


def run(root: Path, files: dict[str, str]) -> TestReport:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    report = root / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(root),
                    f"--junitxml={report}", "tests"], cwd=root, capture_output=True, timeout=120,
                   env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    return read_report(report, root)


def patched(tmp_path: Path, base: Path, files: dict[str, str]) -> TestReport:
    root = tmp_path / "patched"
    shutil.copytree(base, root, ignore=shutil.ignore_patterns("junit.xml"))
    return run(root, files)


def base_run(tmp_path: Path) -> tuple[Path, TestReport]:
    root = tmp_path / "base"
    return root, run(root, {"app.py": APP, "tests/test_app.py": TESTS})


def test_a_fix_is_fixed_and_the_old_failure_is_not_the_patchs(tmp_path: Path) -> None:
    root, base = base_run(tmp_path)
    diff = compare(base.outcomes(), patched(tmp_path, root, {"app.py": APP.replace("x * 3  # wrong on main", "x * 2")}))
    assert [t.id for t in diff.fixed] == ["tests/test_app.py::test_double"]
    assert [t.id for t in diff.still_failing] == ["tests/test_app.py::test_broken_elsewhere"]
    assert diff.newly_failing == () and diff.not_run == () and diff.base_ran == 4


def test_a_bug_breaks_a_test_that_passed(tmp_path: Path) -> None:
    root, base = base_run(tmp_path)
    diff = compare(base.outcomes(), patched(tmp_path, root, {"app.py": APP.replace("max(lo, min(x, hi))", "min(x, hi)")}))
    assert [t.id for t in diff.newly_failing] == ["tests/test_app.py::test_low"]
    assert "assert -1 == 0" in diff.newly_failing[0].message
    assert diff.fixed == ()


def test_a_skipped_or_deleted_test_that_passed_no_longer_runs(tmp_path: Path) -> None:
    root, base = base_run(tmp_path)
    tampered = "import pytest\n" + TESTS.replace("def test_low", "@pytest.mark.skip(reason='flaky')\ndef test_low")
    tampered = tampered.replace("def test_high():\n    assert clamp(11, 0, 10) == 10\n", "")
    diff = compare(base.outcomes(), patched(tmp_path, root, {"app.py": APP.replace("max(lo, min(x, hi))", "min(x, hi)"),
                                                   "tests/test_app.py": tampered}))
    assert diff.newly_failing == ()
    assert [(n.id, n.how) for n in diff.not_run] == [
        ("tests/test_app.py::test_high", "no longer runs"),
        ("tests/test_app.py::test_low", "is now skipped (flaky)"),
    ]


def test_a_new_test_that_fails_is_newly_failing(tmp_path: Path) -> None:
    root, base = base_run(tmp_path)
    more = TESTS + "\ndef test_new():\n    assert clamp(5, 0, 1) == 5\n"
    diff = compare(base.outcomes(), patched(tmp_path, root, {"tests/test_app.py": more}))
    assert [t.id for t in diff.new] == ["tests/test_app.py::test_new"]
    assert [t.id for t in diff.newly_failing] == ["tests/test_app.py::test_new"]


def test_a_test_that_passes_when_run_again_is_flaky_not_broken(tmp_path: Path) -> None:
    root, base = base_run(tmp_path)
    diff = compare(base.outcomes(), patched(tmp_path, root, {"app.py": APP.replace("max(lo, min(x, hi))", "min(x, hi)")}))
    again = diff.with_reruns({"tests/test_app.py::test_low": TestOutcome.PASSED})
    assert again.newly_failing == () and again.flaky == ("tests/test_app.py::test_low",)
    assert diff.with_reruns({"tests/test_app.py::test_low": TestOutcome.FAILED}).newly_failing == diff.newly_failing


PARAM = textwrap.dedent("""
    import pytest
    from app import clamp

    CASES = [{cases}]

    @pytest.mark.parametrize("name,args,expected", CASES)
    def test_clamp(name, args, expected):
        assert clamp(*args) == expected
""")
LOW, HIGH, MID = '("low", (-1, 0, 10), 0)', '("high", (11, 0, 10), 10)', '("mid", (5, 0, 10), 5)'


def param_run(tmp_path: Path, *cases: str) -> tuple[Path, TestReport]:
    root = tmp_path / "base"
    return root, run(root, {"app.py": APP, "tests/test_app.py": PARAM.format(cases=", ".join(cases))})


def test_a_case_inserted_before_positional_ids_moves_them_and_nothing_stops_running(tmp_path: Path) -> None:
    root, base = param_run(tmp_path, LOW, HIGH, MID)
    assert "tests/test_app.py::test_clamp[high-args1-10]" in base.tests  # pytest numbers `args` by position
    edge = '("edge", (0, 0, 10), 0)'
    now = patched(tmp_path, root, {"tests/test_app.py": PARAM.format(cases=", ".join([LOW, edge, HIGH, MID]))})
    assert "tests/test_app.py::test_clamp[high-args2-10]" in now.tests
    diff = compare(base.outcomes(), now)
    assert diff.not_run == () and diff.newly_failing == ()


def test_a_case_removed_still_stops_running_though_the_ids_moved(tmp_path: Path) -> None:
    root, base = param_run(tmp_path, LOW, HIGH, MID)
    now = patched(tmp_path, root, {"tests/test_app.py": PARAM.format(cases=", ".join([HIGH, MID])),
                                   "app.py": APP.replace("max(lo, min(x, hi))", "min(x, hi)")})
    diff = compare(base.outcomes(), now)
    assert "tests/test_app.py::test_clamp[low-args0-0]" in [n.id for n in diff.not_run]


def test_moved_cases_with_one_failing_are_not_taken_as_moved(tmp_path: Path) -> None:
    root, base = param_run(tmp_path, LOW, HIGH, MID)
    wrong = '("edge", (0, 0, 10), 1)'
    now = patched(tmp_path, root, {"tests/test_app.py": PARAM.format(cases=", ".join([LOW, wrong, HIGH, MID]))})
    diff = compare(base.outcomes(), now)
    assert [t.id for t in diff.newly_failing] == ["tests/test_app.py::test_clamp[edge-args1-1]"]
    assert {n.id for n in diff.not_run} == {"tests/test_app.py::test_clamp[high-args1-10]",
                                            "tests/test_app.py::test_clamp[mid-args2-5]"}


def test_ids_that_spell_their_values_are_not_positions(tmp_path: Path) -> None:
    # "v1" and "v3" are values, not positions: changing one is a different case.
    tests = textwrap.dedent("""
        import pytest
        from app import clamp

        @pytest.mark.parametrize("v", [{values}])
        def test_v(v):
            assert clamp(5, 0, 10) == 5
    """)
    root = tmp_path / "base"
    base = run(root, {"app.py": APP, "tests/test_app.py": tests.format(values='"v1", "v3"')})
    now = patched(tmp_path, root, {"tests/test_app.py": tests.format(values='"v2", "v3"')})
    assert [n.id for n in compare(base.outcomes(), now).not_run] == ["tests/test_app.py::test_v[v1]"]
