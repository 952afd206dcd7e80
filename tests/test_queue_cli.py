"""`errauto queue list / show / reject` as a user runs them: one queue for all of a user's repositories."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from errauto_daemon.main import main
from tests.helpers.gitrepo import CALC, PYTHON, GitRepo, python_project

BROKEN = CALC.replace("a * b", "a * b + 1")  # breaks test_mul: held for review, tests failed


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "errauto_daemon", *args], capture_output=True, text=True,
                          env=os.environ.copy())


def apply(repo: GitRepo, tmp_path: Path, name: str, text: str) -> None:
    patch = tmp_path / f"{name}.patch"
    patch.write_bytes(repo.make_patch({"calc.py": text}))
    assert cli("apply", str(patch), "--repo", str(repo.path)).returncode in (0, 1)


@pytest.fixture
def two_repos(tmp_path: Path) -> tuple[GitRepo, GitRepo]:
    """#1 and #2 in `proj`, #3 (the newest) in `other`."""
    proj = python_project(tmp_path / "proj")
    other = python_project(tmp_path / "other")
    (proj.path / "sub").mkdir()
    apply(proj, tmp_path, "fix", CALC.replace("a - b", "a + b"))
    apply(proj, tmp_path, "broken", BROKEN)
    apply(other, tmp_path, "other-broken", BROKEN)
    return proj, other


def rows(listing: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in listing.splitlines() if line[:1].isdigit()}


def test_queue_list_names_each_submissions_repository(two_repos: tuple[GitRepo, GitRepo]) -> None:
    proj, other = two_repos
    listing = cli("queue", "list")
    assert listing.returncode == 0, listing.stderr
    assert "REPO" in listing.stdout.splitlines()[0]
    found = rows(listing.stdout)
    assert "proj:main" in found["1"] and "proj:main" in found["2"] and "other:main" in found["3"]
    as_json = json.loads(cli("queue", "list", "--json").stdout)
    assert {s["id"]: s["repo"] for s in as_json} == {
        1: os.path.realpath(proj.path), 2: os.path.realpath(proj.path), 3: os.path.realpath(other.path)}


def test_queue_list_repo_filters_before_the_limit(two_repos: tuple[GitRepo, GitRepo]) -> None:
    proj, other = two_repos
    # Named from a subdirectory, as errauto names repositories; the newest (#3) is
    # another repository's, so a filter applied after `--limit 1` would find nothing.
    listing = cli("queue", "list", "--repo", str(proj.path / "sub"), "--limit", "1")
    assert listing.returncode == 0, listing.stderr
    assert list(rows(listing.stdout)) == ["2"]
    as_json = json.loads(cli("queue", "list", "--repo", str(other.path), "--json").stdout)
    assert [s["id"] for s in as_json] == [3]
    empty = cli("queue", "list", "--repo", str(proj.path), "--status", "rejected")
    assert empty.stdout.startswith("no submissions in state rejected for ")


def test_queue_show_prints_why_each_failed_check_failed(two_repos: tuple[GitRepo, GitRepo]) -> None:
    shown = cli("queue", "show", "2")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    tests_at = out.index("    tests: failed")
    failure = out[tests_at:].split("(log: ", 1)[0]
    # The end of unittest's report, as the check printed it, not only where the log is.
    assert "AssertionError: 7 != 6" in failure and "FAILED (failures=" in failure
    assert "# errauto: exit code" not in failure
    log = out[tests_at:].split("(log: ", 1)[1].split(")", 1)[0]
    assert Path(log).read_text().startswith("$ ")
    lint = next(line for line in out.splitlines() if line.startswith("    lint: passed"))
    assert "(log: " in lint
    as_json = json.loads(cli("queue", "show", "2", "--json").stdout)
    tests = next(c for c in as_json["checks"] if c["name"] == "tests")
    assert tests["log_tail"][-1].startswith("FAILED (failures=")
    assert "log_tail" not in next(c for c in as_json["checks"] if c["name"] == "lint")


def test_queue_show_diff_prints_the_stored_patch(two_repos: tuple[GitRepo, GitRepo], tmp_path: Path) -> None:
    patch = (tmp_path / "broken.patch").read_text()
    shown = cli("queue", "show", "2", "--diff")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.endswith("\n" + patch)
    assert patch not in cli("queue", "show", "2").stdout
    assert json.loads(cli("queue", "show", "2", "--diff", "--json").stdout)["diff"] == patch


def test_queue_reject_json(two_repos: tuple[GitRepo, GitRepo], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queue", "reject", "2", "--reason", "wrong fix", "--json"]) == 0
    rejected = json.loads(capsys.readouterr().out)
    assert rejected["id"] == 2 and rejected["state"] == "rejected" and "wrong fix" in rejected["reason"]
    assert main(["queue", "reject", "3", "--reason", "also wrong", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(cli("queue", "show", "3", "--json").stdout)["state"] == "rejected"
