"""`errauto init` on a real project: which checks it writes, and why the others are not."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from errauto_daemon.main import main
from tests.helpers.gitrepo import GitRepo, tools_on_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# mypy is "installed" but fails on the project as committed; ruff is configured but not installed.
FAILING_MYPY = '#!/bin/sh\necho "calc.py:1: error: Name \\"x\\" is not defined"\necho "Found 1 error in 1 file"\nexit 1\n'


@pytest.fixture
def newcomer_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    repo = GitRepo(tmp_path / "proj")
    repo.commit("init", {
        "pyproject.toml": "[project]\nname = 'x'\n[tool.pytest.ini_options]\n",
        "ruff.toml": "line-length = 100\n",
        "mypy.ini": "[mypy]\n",
        "tests/test_x.py": "def test_one():\n    assert 1 + 1 == 2\n",
    })
    marker = tmp_path / "mypy-ran"
    monkeypatch.setenv("PATH", tools_on_path(tmp_path / "bin", {
        "mypy": f"#!/bin/sh\ntouch '{marker}'\n" + FAILING_MYPY.split("\n", 1)[1]}))
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
    assert '[checks.tests]\ncommand = "python -m pytest -q"' in text
    # Failing on main: written disabled, with why.
    assert ("# disabled by errauto init: fails on main (exit 1): Found 1 error in 1 file\n"
            "# fix that (or the command), then uncomment.\n"
            "# [checks.typecheck]\n# command = \"mypy .\"") in text
    # Not installed: left out, and said so.
    assert "lint: ruff: command not found; left out of .errauto.toml" in out
    assert "# [checks.lint]" in text
    assert "tests      python -m pytest -q  passes" in out
    assert "typecheck  mypy .               written disabled: fails on main (exit 1)" in out
    assert (tmp_path / "mypy-ran").exists()
    # The checks ran in a pooled worktree: the user's checkout has only the new file.
    assert repo.git("status", "--porcelain", "--ignored").strip() == "?? .errauto.toml"


def test_init_no_run_keeps_detection_and_the_installed_check(
        newcomer_project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = newcomer_project
    assert main(["init", "--repo", str(repo.path), "--no-run"]) == 0
    out = capsys.readouterr().out
    assert set(checks_written(repo)) == {"tests", "typecheck"}
    assert "lint: ruff: command not found; left out of .errauto.toml" in out
    assert "not run: --no-run" in out
    assert not (tmp_path / "mypy-ran").exists()
