from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import run
from tests.helpers.gitrepo import CALC, GitRepo


def test_good_fix_is_merged_and_checkout_follows(project: GitRepo, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    base = project.head()
    patch = tmp_path / "fix-add.patch"
    patch.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))

    code, out, _ = run(capsys, "apply", str(patch), "--repo", str(project.path))

    assert code == 0, out
    assert "merged into main" in out
    assert project.head("main") != base
    assert project.git("rev-parse", "main^").strip() == base
    assert "a + b" in project.read("calc.py")
    assert project.git("status", "--porcelain") == ""
    assert "Errauto-Submission: 1" in project.git("log", "-1", "--format=%B")


def test_fix_breaking_tests_is_held_for_review(project: GitRepo, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    base = project.head()
    patch = tmp_path / "mul.patch"
    patch.write_bytes(project.make_patch({"calc.py": CALC.replace("a * b", "a * b + 1")}))

    code, out, _ = run(capsys, "apply", str(patch), "--repo", str(project.path), "--json")

    assert code == 1
    result = json.loads(out)
    assert result["state"] == "awaiting_review"
    assert result["explanation"]["gates"][0].startswith("tests must pass")
    assert project.head("main") == base


PYPROJECT = '[project]\nname = "calc"\nversion = "1.0"\nclassifiers = ["A"]\ndependencies = []\n'


@pytest.mark.parametrize("new, merged", [
    (PYPROJECT.replace('"1.0"', '"1.1"').replace('["A"]', '["A", "B"]'), True),  # a release's metadata
    (PYPROJECT.replace("dependencies = []", 'dependencies = ["evil"]'), False),
    (PYPROJECT + "[tool.pytest.ini_options]\naddopts = '-k not add'\n", False),
    (PYPROJECT.replace('"1.0"', '"1.1"') + "[build-system]\nrequires = ['x']\n", False),
])
def test_pyproject_is_protected_except_for_descriptive_metadata(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str], new: str, merged: bool) -> None:
    project.commit("packaging", {"pyproject.toml": PYPROJECT})
    base = project.head()
    patch = tmp_path / "meta.patch"
    patch.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b"), "pyproject.toml": new}))

    code, out, _ = run(capsys, "apply", str(patch), "--repo", str(project.path), "--json")

    gates = json.loads(out)["explanation"]["gates_hit"]
    protected = "touches protected paths (pyproject.toml): never merged without a person"
    if merged:
        assert code == 0 and protected not in gates and project.head() != base
    else:
        assert code == 1 and protected in gates and project.head() == base
