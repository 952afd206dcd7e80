"""Weakened tests, read from the test files: each way a patch can make a failing test go quiet."""
from __future__ import annotations

import textwrap

import pytest

from errauto_daemon.evidence.tamper import FileChange, findings, is_test_file, runners_of

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

BASE = textwrap.dedent("""\
    import unittest

    import pytest

    from app import clamp


    def test_clamp_low():
        assert clamp(-1, 0, 10) == 0


    def test_clamp_high():
        assert clamp(11, 0, 10) == 10
        assert clamp(10, 0, 10) == 10


    class TestRaises:
        def test_bad_bounds(self):
            with pytest.raises(ValueError):
                clamp(1, 10, 0)


    class Legacy(unittest.TestCase):
        def test_mid(self):
            self.assertEqual(clamp(5, 0, 10), 5)
""")


def changed(after: str, path: str = "tests/test_app.py", before: str | None = BASE) -> list[str]:
    return [str(f) for f in findings([FileChange(path, before, after)])]


def edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


def test_an_untouched_or_only_strengthened_file_has_no_finding() -> None:
    assert changed(BASE) == []
    assert changed(edit("    assert clamp(-1, 0, 10) == 0\n",
                        "    assert clamp(-1, 0, 10) == 0\n    assert clamp(-5, 0, 10) == 0\n")) == []
    assert changed(BASE + "\n\ndef test_new():\n    assert clamp(0, 0, 1) == 0\n") == []


@pytest.mark.parametrize("after, expected", [
    (edit("def test_clamp_low():", "@pytest.mark.skip(reason='flaky')\ndef test_clamp_low():"),
     "tests/test_app.py:8 adds @pytest.mark.skip to test_clamp_low"),
    (edit("def test_clamp_low():", "@pytest.mark.xfail\ndef test_clamp_low():"),
     "tests/test_app.py:8 adds @pytest.mark.xfail to test_clamp_low"),
    (edit("def test_clamp_low():", "@pytest.mark.skipif(True, reason='x')\ndef test_clamp_low():"),
     "tests/test_app.py:8 adds @pytest.mark.skipif to test_clamp_low"),
    (edit("    def test_mid(self):", "    @unittest.skip('later')\n    def test_mid(self):"),
     "tests/test_app.py:24 adds @unittest.skip to Legacy::test_mid"),
    (edit("class Legacy(unittest.TestCase):", "@unittest.skip('all')\nclass Legacy(unittest.TestCase):"),
     "tests/test_app.py:23 adds @unittest.skip to Legacy::test_mid"),
    (edit("class TestRaises:\n", "class TestRaises:\n    pytestmark = [pytest.mark.xfail(reason='x')]\n"),
     "tests/test_app.py:18 adds @pytest.mark.xfail (the class's pytestmark) to TestRaises::test_bad_bounds"),
    (edit("    assert clamp(-1, 0, 10) == 0\n", "    pytest.skip('flaky')\n    assert clamp(-1, 0, 10) == 0\n"),
     "tests/test_app.py:9 adds pytest.skip() to test_clamp_low"),
    (edit("        self.assertEqual(clamp(5, 0, 10), 5)\n",
          "        self.skipTest('no')\n        self.assertEqual(clamp(5, 0, 10), 5)\n"),
     "tests/test_app.py:25 adds self.skipTest() to Legacy::test_mid"),
    (edit("    assert clamp(-1, 0, 10) == 0\n", "    assert True\n"),
     "tests/test_app.py:8 removes every assertion from test_clamp_low"),
    (edit("    assert clamp(-1, 0, 10) == 0\n", "    assert clamp(-1, 0, 10) == clamp(-1, 0, 10)\n"),
     "tests/test_app.py:8 removes every assertion from test_clamp_low"),
    (edit("    assert clamp(-1, 0, 10) == 0\n", "    assert (clamp(-1, 0, 10) == 1, 'low')\n"),
     "tests/test_app.py:8 removes every assertion from test_clamp_low"),
    (edit("    assert clamp(10, 0, 10) == 10\n", ""),
     "tests/test_app.py:12 removes 1 of 2 assertions from test_clamp_high"),
    (edit("        with pytest.raises(ValueError):\n            clamp(1, 10, 0)\n", "        clamp(1, 10, 0)\n"),
     "tests/test_app.py:18 removes every assertion from TestRaises::test_bad_bounds"),
    (edit("def test_clamp_high():\n    assert clamp(11, 0, 10) == 10\n    assert clamp(10, 0, 10) == 10\n", ""),
     "tests/test_app.py:12 deletes test_clamp_high"),
    (edit("    assert clamp(-1, 0, 10) == 0\n", "    import os\n    os._exit(0)\n"),
     "tests/test_app.py:10 calls os._exit() in test_clamp_low, which ends the test run"),
    (BASE + "\npytestmark = pytest.mark.skip\n", "tests/test_app.py:27 sets pytestmark"),
    (BASE + "\nimport sys\nsys.exit(0)\n", "tests/test_app.py:28 calls sys.exit() when the module is imported"),
])
def test_each_weakening_is_named_with_its_line(after: str, expected: str) -> None:
    assert expected in changed(after)


def test_a_deleted_test_file_and_a_rename_of_the_test() -> None:
    assert changed(None, before=BASE) == ["tests/test_app.py deletes a test file"]  # type: ignore[arg-type]
    renamed = changed(edit("def test_clamp_low():", "def check_clamp_low():"))
    assert renamed == ["tests/test_app.py:8 deletes test_clamp_low"]


def test_conftest_hooks_that_deselect_or_rewrite_results() -> None:
    hook = textwrap.dedent("""\
        def pytest_collection_modifyitems(config, items):
            items[:] = [i for i in items if "clamp" not in i.name]
    """)
    assert changed(hook, path="conftest.py", before=None) == [
        "conftest.py:1 defines the hook pytest_collection_modifyitems, which changes what the test run "
        "collects, runs or reports"]
    assert changed(hook, path="tests/conftest.py", before=hook) == []
    edited = hook.replace('"clamp"', '"low"')
    assert changed(edited, path="tests/conftest.py", before=hook) == [
        "tests/conftest.py:1 changes the hook pytest_collection_modifyitems, which changes what the test run "
        "collects, runs or reports"]
    assert changed("collect_ignore = ['test_app.py']\n", path="tests/conftest.py", before="") == [
        "tests/conftest.py:1 sets collect_ignore"]


@pytest.mark.parametrize("path, before, after, expected", [
    ("pytest.ini", "[pytest]\naddopts = -q\n", "[pytest]\naddopts = -q -k 'not clamp'\n",
     "pytest.ini changes the [pytest] section, which tells the test run what to run"),
    ("setup.cfg", "[metadata]\nname = a\n", "[metadata]\nname = a\n[tool:pytest]\naddopts = --deselect x\n",
     "setup.cfg changes the [tool:pytest] section, which tells the test run what to run"),
    ("tox.ini", "[tox]\nenvlist = py3\n", "[tox]\nenvlist = py3\n[pytest]\ntestpaths = docs\n",
     "tox.ini changes the [pytest] section, which tells the test run what to run"),
    ("pyproject.toml", "[project]\nname = 'a'\n", "[project]\nname = 'a'\n[tool.pytest.ini_options]\naddopts = '-x'\n",
     "pyproject.toml changes [tool.pytest], which tells the test run what to run"),
    ("pytest.py", None, "import sys\nsys.exit(0)\n",
     "pytest.py adds pytest.py at the top of the tree, where it is imported in place of the test runner "
     "or at interpreter start"),
    ("sitecustomize.py", None, "",
     "sitecustomize.py adds sitecustomize.py at the top of the tree, where it is imported in place of the "
     "test runner or at interpreter start"),
    ("Makefile", "test:\n\tpytest\n", "test:\n\ttrue\n", "Makefile changes how the checks run"),
])
def test_the_runner_configuration_and_shadowing_modules(path: str, before: str | None, after: str,
                                                        expected: str) -> None:
    assert expected in changed(after, path=path, before=before)


def test_a_makefile_below_the_top_is_not_how_the_checks_run() -> None:
    """`make` reads the Makefile at the top of the tree; the docs' or a C library's own do not run the tests."""
    for path in ("docs/Makefile", "libwcwidth/Makefile", "docs/make/GNUmakefile"):
        assert changed("html:\n\tsphinx-build -W\n", path=path, before="html:\n\tsphinx-build\n") == []
    assert changed("test:\n\ttrue\n", path="GNUmakefile", before="test:\n\tpytest\n") == [
        "GNUmakefile changes how the checks run"]
    assert changed("nox.session()\n", path="noxfile.py", before="") == ["noxfile.py changes how the checks run"]


def test_a_skip_on_a_new_test_hides_nothing_the_base_had() -> None:
    new = BASE + "\n\n@pytest.mark.skipif(True, reason='needs 3.14')\ndef test_new_api():\n    assert clamp(1, 0, 2)\n"
    assert changed(new) == []
    exits = BASE + "\n\ndef test_new():\n    import os\n    os._exit(0)\n"
    assert changed(exits) == ["tests/test_app.py:30 calls os._exit() in test_new, which ends the test run"]


def test_coverage_settings_are_not_a_weakening() -> None:
    """omit and exclude_lines cannot hide a changed line: changed_lines counts such lines as not run."""
    assert changed("[tool.coverage.run]\nomit = ['app.py']\n", path="pyproject.toml", before="") == []
    assert changed("[coverage:report]\nexclude_lines = clamp\n", path="setup.cfg", before="") == []


def test_other_configuration_changes_say_nothing() -> None:
    assert changed("[project]\nname = 'b'\n", path="pyproject.toml", before="[project]\nname = 'a'\n") == []
    assert changed("[metadata]\nname = b\n", path="setup.cfg", before="[metadata]\nname = a\n") == []
    assert changed("x = 2\n", path="src/app.py", before="x = 1\n") == []


def test_unparsable_test_code_is_left_to_the_runner() -> None:
    assert changed("def test_(:\n") == []


def test_which_files_are_tests() -> None:
    assert is_test_file("tests/test_app.py") and is_test_file("app_test.py") and is_test_file("conftest.py")
    assert is_test_file("tests/helpers/util.py")
    assert not is_test_file("src/app.py") and not is_test_file("testing.py")
    assert is_test_file("spec/app_spec.py", ["*_spec.py"])


def test_make_nox_and_toxs_own_sections_count_when_a_check_runs_them() -> None:
    makefile = FileChange("Makefile", "test:\n\tpytest\n", "test:\n\ttrue\n")
    tox = FileChange("tox.ini", "[tox]\nenvlist = py3\n[testenv]\ncommands = pytest\n",
                     "[tox]\nenvlist = py3\n[testenv]\ncommands = true\n")
    noxfile = FileChange("noxfile.py", "", "nox.session()\n")
    pytest_only = runners_of([("python", "-m", "pytest", "-q")])
    assert findings([makefile, tox, noxfile], runners=pytest_only) == []
    assert [str(f) for f in findings([makefile, tox, noxfile], runners=runners_of([("make", "test")]))] == [
        "Makefile changes how the checks run"]
    by_tox = runners_of([("sh", "-c", "cd . && .venv/bin/tox -e py3")])
    assert [str(f) for f in findings([tox], runners=by_tox)] == [
        "tox.ini changes the [testenv] section, which tells the test run what to run"]
    assert [str(f) for f in findings([noxfile], runners=runners_of([("python", "-m", "nox")]))] == [
        "noxfile.py changes how the checks run"]
    # tox.ini's [pytest] section is pytest's own: it counts whatever runs pytest.
    pytest_section = FileChange("tox.ini", "[pytest]\naddopts = -q\n", "[pytest]\naddopts = -q -k nothing\n")
    assert [str(f) for f in findings([pytest_section], runners=pytest_only)] == [
        "tox.ini changes the [pytest] section, which tells the test run what to run"]
