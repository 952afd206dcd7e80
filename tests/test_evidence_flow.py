"""Confidence from evidence, end to end: real pytest runs with JUnit and coverage
reports on a real repository, through `errauto apply`; each case's route and
explanation as a user sees them."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from errauto_daemon.store import Store
from tests.helpers.cli import run
from tests.helpers.gitrepo import GitRepo

pytestmark = pytest.mark.slow

APP = textwrap.dedent("""\
    def clamp(x, lo, hi):
        return max(lo, min(x, hi))


    def double(x):
        return x * 2


    def unused(x):
        return x
""")
TESTS = textwrap.dedent("""\
    from app import clamp, double


    def test_clamp_low():
        assert clamp(-1, 0, 10) == 0


    def test_clamp_high():
        assert clamp(11, 0, 10) == 10


    def test_double():
        assert double(2) == 4
""")
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=.errauto/junit.xml"]


def config(*, min_lines: float | None = None, line_data: bool = False, reruns: int = 2) -> str:
    command = [sys.executable, "-m", "coverage", "run", "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--junitxml=.errauto/junit.xml"] if line_data else PYTEST
    text = (f"target = 'main'\n[checks.tests]\ncommand = {json.dumps(command)}\n"
            f"junit = '.errauto/junit.xml'\nreruns = {reruns}\n")
    if line_data:
        # coverage writes its JSON in a second step: the check is one shell line.
        text = (f"target = 'main'\n[checks.tests]\ncommand = ['sh', '-c', "
                f"'{' '.join(command)} tests; s=$?; {sys.executable} -m coverage json -q -o .errauto/cov.json; "
                "exit $s']\njunit = '.errauto/junit.xml'\nline_data = '.errauto/cov.json'\n"
                f"reruns = {reruns}\n")
    if min_lines is not None:
        text += f"[evidence]\nmin_changed_lines_covered = {min_lines}\n"
    return text


def project(tmp_path: Path, *, app: str = APP, tests: str = TESTS, cfg: str | None = None) -> GitRepo:
    repo = GitRepo(tmp_path / "proj")
    repo.commit("initial", {"app.py": app, "tests/test_app.py": tests, "conftest.py": "",
                            ".errauto.toml": cfg if cfg is not None else config()})
    return repo


def apply(repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str],
          name: str = "fix.patch") -> tuple[int, dict[str, Any]]:
    patch = tmp_path / name
    patch.write_bytes(repo.make_patch(files))
    code, out, err = run(capsys, "apply", str(patch), "--repo", str(repo.path), "--json", "--quiet")
    return code, json.loads(out)


def test_a_bug_hidden_by_a_skipped_test_is_not_merged_and_the_skip_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path)
    base = repo.head()
    tampered = TESTS.replace("def test_clamp_low", "import pytest\n\n\n@pytest.mark.skip(reason='flaky')\n"
                                                   "def test_clamp_low")
    code, sub = apply(repo, tmp_path, capsys, {"app.py": APP.replace("max(lo, min(x, hi))", "min(x, hi)"),
                                               "tests/test_app.py": tampered})
    assert code == 1 and sub["state"] == "awaiting_review" and repo.head() == base
    gates = sub["explanation"]["gates_hit"]
    assert "weakens the tests: tests/test_app.py::test_clamp_low is now skipped (flaky)" in gates
    assert any("tests/test_app.py:7 adds @pytest.mark.skip to test_clamp_low, which passed on the base" in g
               for g in gates)


def test_a_patch_on_a_main_that_already_fails_a_test_is_not_blamed_for_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path, app=APP.replace("return x * 2", "return x * 3"))
    code, sub = apply(repo, tmp_path, capsys, {"app.py": APP.replace("return x * 2", "return x * 3")
                                               .replace("def unused(x):\n    return x", "def unused(x):\n    return x  # ok")})
    ex = sub["explanation"]
    assert ex["confidence"] == 1.0
    assert "1 fail on main too" in ex["parts"][0]["detail"]
    assert any(g.startswith("tests fails on main too (tests/test_app.py::test_double)") for g in ex["gates"])
    assert ex["gates_hit"] == []  # a person approving it needs no --force
    assert code == 1 and sub["state"] == "awaiting_review"  # no GitHub: the pull-request route is review


def test_a_patch_that_fixes_a_failing_test_says_so_first_and_merges(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path, app=APP.replace("return x * 2", "return x * 3"))
    code, sub = apply(repo, tmp_path, capsys, {"app.py": APP})
    part = sub["explanation"]["parts"][0]
    assert part["detail"].startswith("fixes tests/test_app.py::test_double")
    assert code == 0 and sub["state"] == "merged"


def test_a_broken_test_names_the_test_and_quotes_its_failure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path)
    code, sub = apply(repo, tmp_path, capsys, {"app.py": APP.replace("max(lo, min(x, hi))", "min(x, hi)")})
    part = sub["explanation"]["parts"][0]
    assert code == 1 and part["score"] == 0
    assert part["detail"].startswith("breaks tests/test_app.py::test_clamp_low: assert -1 == 0")
    failing = sub["explanation"]["evidence"]["checks"]["tests"]["newly_failing"]
    assert failing[0]["id"] == "tests/test_app.py::test_clamp_low" and "assert -1 == 0" in failing[0]["message"]

    code, shown, _ = run(capsys, "queue", "show", str(sub["id"]))
    assert code == 0
    assert "    breaks tests/test_app.py::test_clamp_low\n        | assert -1 == 0\n" in shown


def test_a_test_that_fails_only_on_its_first_run_is_flaky_and_recorded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    counter = tmp_path / "runs"
    flaky = TESTS + textwrap.dedent(f"""\


        def test_sometimes():
            import pathlib
            p = pathlib.Path({str(counter)!r})
            n = int(p.read_text()) if p.exists() else 0
            p.write_text(str(n + 1))
            assert n != 1  # the base run is the first; the patch's first run fails
    """)
    # The run counter must outlive each run, so it lives outside the worktree, which a
    # sandboxed check cannot write: this check runs unsandboxed.
    repo = project(tmp_path, tests=flaky, cfg="sandbox = 'off'\n" + config())
    code, sub = apply(repo, tmp_path, capsys, {"app.py": APP.replace("    return x\n", "    return x + 0\n")})
    ex = sub["explanation"]
    assert "flaky: tests/test_app.py::test_sometimes failed 1 of 2 runs" in ex["gates"]
    assert ex["parts"][0]["score"] == 1.0 and sub["state"] == "awaiting_review" and code == 1
    assert Store().flakiest(0) == [(str(repo.path), "tests/test_app.py::test_sometimes", 1, 2, 1)]
    code, shown, _ = run(capsys, "status")
    assert code == 0
    assert "flaky tests (failed, then passed when run again):\n  tests/test_app.py::test_sometimes in proj: " \
           "flaky in 1 validation, failed 1 of 2 runs" in shown


def test_changed_code_no_test_runs_is_gated_with_its_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path, cfg=config(line_data=True, min_lines=1.0))
    code, sub = apply(repo, tmp_path, capsys, {"app.py": APP.replace("    return x\n", "    return x - 1\n")})
    ex = sub["explanation"]
    assert ex["evidence"]["lines"]["not_run"] == ["app.py:10 not run by any test"]
    assert "the tests ran 0 of 1 changed lines (app.py:10 not run by any test); [evidence] asks for 100%" \
        in ex["gates_hit"]
    assert code == 1 and sub["state"] == "awaiting_review"

    code, sub = apply(repo, tmp_path, capsys, {"app.py": APP.replace("min(x, hi)", "min(hi, x)")}, "b.patch")
    assert sub["explanation"]["evidence"]["lines"]["share"] == 1.0
    assert code == 0 and sub["state"] == "merged"


def test_a_report_planted_in_the_tree_does_not_stand_in_for_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A patch that breaks the runner and commits a report where the check writes its own."""
    repo = project(tmp_path)
    fake = ('<testsuite><testcase classname="tests.test_app" name="test_clamp_low"/>'
            '<testcase classname="tests.test_app" name="test_clamp_high"/>'
            '<testcase classname="tests.test_app" name="test_double"/></testsuite>')
    code, sub = apply(repo, tmp_path, capsys, {".errauto/junit.xml": fake, "conftest.py": "import sys\nsys.exit(3)\n",
                                               "app.py": APP.replace("max(lo, min(x, hi))", "min(x, hi)")})
    assert code == 1 and sub["state"] == "awaiting_review"
    assert "evidence is coarse: tests: no test report at .errauto/junit.xml" in sub["explanation"]["notes"]


UNITTEST = textwrap.dedent("""\
    import unittest

    from app import clamp


    class ClampTest(unittest.TestCase):
        def test_low(self):
            self.assertEqual(clamp(-1, 0, 10), 0)

        def test_high(self):
            self.assertEqual(clamp(11, 0, 10), 10)
""")
BUG = {"app.py": APP.replace("max(lo, min(x, hi))", "min(x, hi)")}  # clamp no longer clamps low


@pytest.mark.parametrize("files, gate", [
    ({"tests/test_app.py": TESTS.replace("def test_clamp_low", "import pytest\n\n\n@pytest.mark.xfail\n"
                                                                "def test_clamp_low")},
     "weakens the tests: tests/test_app.py:7 adds @pytest.mark.xfail to test_clamp_low, which passed on the base"),
    ({"tests/test_app.py": TESTS.replace("def test_clamp_low():\n    assert clamp(-1, 0, 10) == 0\n", "")},
     "weakens the tests: tests/test_app.py:4 deletes test_clamp_low, which passed on the base"),
    ({"tests/test_app.py": TESTS.replace("    assert clamp(-1, 0, 10) == 0\n", "    clamp(-1, 0, 10)\n")},
     "weakens the tests: tests/test_app.py:4 removes every assertion from test_clamp_low, which passed on the base"),
    ({"tests/test_app.py": TESTS.replace("    assert clamp(-1, 0, 10) == 0\n", "    assert True\n")},
     "weakens the tests: tests/test_app.py:4 removes every assertion from test_clamp_low, which passed on the base"),
    ({"conftest.py": "def pytest_collection_modifyitems(items):\n"
                     "    items[:] = [i for i in items if 'low' not in i.name]\n"},
     "weakens the tests: tests/test_app.py::test_clamp_low no longer runs"),
    ({"tests/test_unit.py": UNITTEST.replace("    def test_low", "    @unittest.skip('later')\n    def test_low")},
     "weakens the tests: tests/test_unit.py::ClampTest::test_low is now skipped (later)"),
])
def test_each_way_of_hiding_a_bug_from_the_tests_is_held_with_its_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str], gate: str) -> None:
    repo = project(tmp_path)
    repo.commit("unittest tests too", {"tests/test_unit.py": UNITTEST})
    base = repo.head()
    code, sub = apply(repo, tmp_path, capsys, {**BUG, **files})
    assert (code, sub["state"], repo.head()) == (1, "awaiting_review", base)
    assert gate in sub["explanation"]["gates_hit"], sub["explanation"]["gates_hit"]


def test_a_deleted_test_file_is_held(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path)
    repo.commit("unittest tests too", {"tests/test_unit.py": UNITTEST})
    patch = tmp_path / "rm.patch"
    work = repo.path
    repo.git("rm", "-q", "tests/test_unit.py")
    patch.write_bytes(repo.git("diff", "--cached").encode())
    repo.git("reset", "-q", "--hard")
    code, out, _ = run(capsys, "apply", str(patch), "--repo", str(work), "--json", "--quiet")
    gates = json.loads(out)["explanation"]["gates_hit"]
    assert code == 1
    assert "weakens the tests: tests/test_unit.py deletes a test file" in gates
    assert "weakens the tests: tests/test_unit.py::ClampTest::test_low no longer runs" in gates


def test_code_added_only_for_another_platform_is_reported_not_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path, cfg=config(line_data=True, min_lines=1.0))
    other = ("def clamp(x, lo, hi):\n    if sys.platform == 'win32':  # pragma: no cover\n"
             "        x = float(x)\n    return max(lo, min(x, hi))\n")
    code, sub = apply(repo, tmp_path, capsys, {"app.py": "import sys\n\n\n" + APP.replace(
        "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n", other)})
    lines = sub["explanation"]["evidence"]["lines"]
    assert lines["not_run"] == ["app.py:5-6 not run by any test"] and lines["changed"] == 3
    assert code == 1 and sub["state"] == "awaiting_review"
