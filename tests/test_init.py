"""`errauto init` on a real project: which checks it writes, and why the others are not."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from errauto_daemon import paths
from errauto_daemon.main import main
from tests.helpers.cli import run
from tests.helpers.gitrepo import PYTHON, GitRepo, tools_on_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# mypy is "installed" but fails on the project as committed; ruff is configured but not installed.
FAILING_MYPY = '#!/bin/sh\necho "calc.py:1: error: Name \\"x\\" is not defined"\necho "Found 1 error in 1 file"\nexit 1\n'
# The tests check as init writes it for a pytest project with pytest-cov (the test extra installs it).
PYTEST_ONE_RUN = ("python -m pytest -q --junitxml=.errauto/junit.xml --cov "
                  "--cov-report=json:.errauto/coverage.json")


@pytest.fixture
def newcomer_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    repo = GitRepo(tmp_path / "proj")
    repo.commit("init", {
        "pyproject.toml": "[project]\nname = 'x'\n[tool.pytest.ini_options]\n",
        "ruff.toml": "line-length = 100\n",
        "mypy.ini": "[mypy]\n",
        "tests/test_x.py": "def test_one():\n    assert 1 + 1 == 2\n",
    })
    monkeypatch.setenv("PATH", tools_on_path(tmp_path / "bin", {
        "mypy": "#!/bin/sh\necho mypy-ran\n" + FAILING_MYPY.split("\n", 1)[1]}))
    return repo


def checks_written(repo: GitRepo) -> dict[str, object]:
    checks = tomllib.loads(repo.read(".errauto.toml")).get("checks", {})
    assert isinstance(checks, dict)
    return checks


def test_init_runs_the_checks_once_and_writes_only_those_that_pass(
        newcomer_project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = newcomer_project
    assert main(["init", "--repo", str(repo.path)]) == 0
    out = capsys.readouterr().out
    text = repo.read(".errauto.toml")
    # Passing on main: enabled.
    assert set(checks_written(repo)) == {"tests"}
    assert f'[checks.tests]\ncommand = "{PYTEST_ONE_RUN}"' in text
    # Failing on main: written disabled, with why.
    assert ("# disabled by errauto init: fails on main (exit 1): Found 1 error in 1 file\n"
            "# fix that (or the command), then uncomment.\n"
            "# [checks.typecheck]\n# command = \"mypy .\"") in text
    # Not installed: left out, and said so.
    assert "lint: ruff: command not found; left out of .errauto.toml" in out
    assert "# [checks.lint]" in text
    assert f"tests      {PYTEST_ONE_RUN}  passes" in out
    assert f"typecheck  {'mypy .':{len(PYTEST_ONE_RUN)}}  written disabled: fails on main (exit 1)" in out
    # It ran (in its sandbox, which keeps its files to itself: it says so in its log).
    assert "mypy-ran" in (paths.check_logs_dir() / "init" / "typecheck.log").read_text()
    # The checks ran in a pooled worktree: the user's checkout has only the new files
    # (.gitignore: the reports' folder kept out of commits).
    assert repo.git("status", "--porcelain", "--ignored").strip() == "?? .errauto.toml\n?? .gitignore"


def test_init_no_run_keeps_detection_and_the_installed_check(
        newcomer_project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = newcomer_project
    assert main(["init", "--repo", str(repo.path), "--no-run"]) == 0
    out = capsys.readouterr().out
    assert set(checks_written(repo)) == {"tests", "typecheck"}
    assert "lint: ruff: command not found; left out of .errauto.toml" in out
    assert "not run: --no-run" in out
    assert not (tmp_path / "mypy-ran").exists()


APP = "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n"
TESTS = "from app import clamp\n\n\ndef test_clamp_low():\n    assert clamp(-1, 0, 10) == 0\n"


def pytest_project(tmp_path: Path, files: dict[str, str | bytes] | None = None) -> GitRepo:
    repo = GitRepo(tmp_path / "proj")
    repo.commit("init", {"pyproject.toml": "[project]\nname = 'x'\n[tool.pytest.ini_options]\n",
                         "app.py": APP, "tests/test_app.py": TESTS, **(files or {})})
    return repo


@pytest.mark.slow
def test_init_gives_a_pytest_project_per_test_results_and_line_data_from_one_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", tools_on_path(tmp_path / "bin", {}))
    repo = pytest_project(tmp_path)

    code, out, _ = run(capsys, "init", "--repo", str(repo.path))

    assert code == 0, out
    text = repo.read(".errauto.toml")
    assert checks_written(repo) == {"tests": {
        "command": PYTEST_ONE_RUN, "weight": 0.4, "gate": True, "timeout": 600,
        "junit": ".errauto/junit.xml", "line_data": ".errauto/coverage.json"}}
    assert "# [evidence]\n# min_changed_lines_covered = 1.0\n" in text
    assert f"tests      {PYTEST_ONE_RUN}  passes" in out
    assert "tests: one run reports each test's result (.errauto/junit.xml) and which lines ran" in out
    assert "added .errauto/ to .gitignore: the reports the checks write there stay out of commits" in out
    assert "git add .errauto.toml .gitignore && git commit" in out
    assert repo.read(".gitignore").splitlines()[-1] == ".errauto/"
    repo.git("add", ".errauto.toml", ".gitignore")
    repo.git("commit", "-q", "-m", "Configure errauto")
    base = repo.head()

    # What it wrote judges a patch by its tests, one by one, and by the lines they ran:
    # a bug in clamp, the test that catches it skipped, and a function no test calls.
    patch = tmp_path / "tamper.patch"
    patch.write_bytes(repo.make_patch({
        "app.py": APP.replace("max(lo, min(x, hi))", "min(x, hi)") + "\n\ndef unused(x):\n    return x\n",
        "tests/test_app.py": TESTS.replace(
            "def test_clamp_low", "import pytest\n\n\n@pytest.mark.skip(reason='flaky')\ndef test_clamp_low")}))
    code, out, _ = run(capsys, "apply", str(patch), "--repo", str(repo.path), "--json", "--quiet")

    sub = json.loads(out)
    assert code == 1 and sub["state"] == "awaiting_review" and repo.head() == base
    gates = sub["explanation"]["gates_hit"]
    assert any(g.startswith("weakens the tests: tests/test_app.py:7 adds @pytest.mark.skip to test_clamp_low, "
                            "which passed on the base") for g in gates), gates
    assert sub["explanation"]["evidence"]["lines"]["not_run"] == ["app.py:2, 6 not run by any test"]
    # The user's checkout: the reports went to the pooled worktree, not here.
    assert not (repo.path / ".errauto").exists()


def test_init_without_pytest_cov_asks_for_per_test_results_and_says_how_to_add_line_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A `python` that cannot import pytest-cov (installed here for the other tests).
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['pytest_cov'] = None\n")
    monkeypatch.setenv("PATH", tools_on_path(tmp_path / "bin", {
        "python": f'#!/bin/sh\nPYTHONPATH="{hide}" exec "{PYTHON}" "$@"\n'}))
    repo = pytest_project(tmp_path, {".gitignore": "/build\n.errauto/\n"})

    code, out, _ = run(capsys, "init", "--repo", str(repo.path), "--no-run")

    assert code == 0, out
    text = repo.read(".errauto.toml")
    assert checks_written(repo)["tests"] == {
        "command": "python -m pytest -q --junitxml=.errauto/junit.xml", "weight": 0.4, "gate": True,
        "timeout": 600, "junit": ".errauto/junit.xml"}
    assert ('# add "--cov --cov-report=json:.errauto/coverage.json" to the command and\n'
            '# line_data = ".errauto/coverage.json"\n') in text
    assert "min_changed_lines_covered" not in text
    assert "install pytest-cov for line data from the same run" in out
    # Already ignored: .gitignore is left as it was.
    assert "to .gitignore" not in out and "git add .errauto.toml && git commit" in out
    assert repo.git("status", "--porcelain").strip() == "?? .errauto.toml"


def test_init_adds_the_reports_folder_to_gitignore_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", tools_on_path(tmp_path / "bin", {}))
    repo = pytest_project(tmp_path, {".gitignore": "*.egg-info"})  # no newline at its end

    assert run(capsys, "init", "--repo", str(repo.path), "--no-run")[0] == 0
    code, out, _ = run(capsys, "init", "--repo", str(repo.path), "--no-run", "--force")

    assert code == 0 and "to .gitignore" not in out
    assert repo.read(".gitignore") == "*.egg-info\n# reports errauto's checks write (.errauto.toml)\n.errauto/\n"
    repo.write(".errauto/junit.xml", "<testsuites/>")
    assert repo.git("status", "--porcelain", "--untracked-files=all").splitlines() == [
        " M .gitignore", "?? .errauto.toml"]


def test_init_leaves_a_unittest_project_and_its_gitignore_as_they_were(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", tools_on_path(tmp_path / "bin", {}))
    repo = GitRepo(tmp_path / "proj")
    repo.commit("init", {"tests/test_x.py": "import unittest\n"})

    code, out, _ = run(capsys, "init", "--repo", str(repo.path), "--no-run")

    assert code == 0
    assert checks_written(repo)["tests"] == {"command": "python -m unittest discover -q", "weight": 0.4,
                                             "gate": True, "timeout": 600}
    assert "junit" not in repo.read(".errauto.toml") and "gitignore" not in out
    assert not (repo.path / ".gitignore").exists()
