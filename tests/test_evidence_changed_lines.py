"""Changed lines exercised: a real git repository, a real patch, a real coverage.py run."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pygit2
import pytest

from errauto_daemon.evidence.changed_lines import (
    CoverageReportError,
    added_lines,
    measure,
    ranges,
    read_coverage,
)
from errauto_daemon.evidence.tamper import is_test_file
from tests.helpers.gitrepo import GitRepo

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

APP = textwrap.dedent("""\
    import sys


    def clamp(x, lo, hi):
        return max(lo, min(x, hi))


    def unused(x):
        return x
""")
TESTS = textwrap.dedent("""\
    from app import clamp


    def test_clamp():
        assert clamp(-1, 0, 10) == 0
""")


def commit_tree(repo: GitRepo, files: dict[str, str]) -> str:
    for name, text in files.items():
        repo.write(name, text)
    repo.git("add", "-A")
    repo.git("commit", "-qm", "x", "--allow-empty")
    return repo.git("rev-parse", "HEAD^{tree}").strip()


def covered(root: Path) -> bytes:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-m", "coverage", "run", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "tests"], cwd=root, env=env, capture_output=True, timeout=120)
    subprocess.run([sys.executable, "-m", "coverage", "json", "-o", "coverage.json"], cwd=root, env=env,
                   capture_output=True, timeout=120, check=True)
    return (root / "coverage.json").read_bytes()


def evidence(repo: GitRepo, base: str, result: str) -> list[str]:
    git = pygit2.Repository(str(repo.path))
    lines = measure(added_lines(git, base, result), read_coverage(covered(repo.path)),
                    text_of=lambda p: (repo.path / p).read_text(), is_test=is_test_file)
    return [f"{lines.run}/{lines.changed}", *lines.not_run()]


@pytest.fixture
def project(tmp_path: Path) -> tuple[GitRepo, str]:
    repo = GitRepo(tmp_path / "proj")
    repo.git("config", "user.email", "t@example.com")
    repo.git("config", "user.name", "T")
    return repo, commit_tree(repo, {"app.py": APP, "tests/test_app.py": TESTS})


def test_a_change_the_tests_run_counts_in_full(project: tuple[GitRepo, str]) -> None:
    repo, base = project
    result = commit_tree(repo, {"app.py": APP.replace("max(lo, min(x, hi))", "min(max(x, lo), hi)")})
    assert evidence(repo, base, result) == ["1/1"]


def test_a_bug_in_code_no_test_runs_is_named_with_its_lines(project: tuple[GitRepo, str]) -> None:
    repo, base = project
    result = commit_tree(repo, {"app.py": APP.replace("    return x\n", "    y = x + 1\n    # off by one\n"
                                                                            "    return y\n")})
    assert evidence(repo, base, result) == ["0/2", "app.py:9, 11 not run by any test"]


def test_code_for_another_platform_is_not_run_and_a_pragma_does_not_hide_it(project: tuple[GitRepo, str]) -> None:
    repo, base = project
    other = ("    if sys.platform == 'win32':  # pragma: no cover\n        x = abs(x)\n"
             "    return max(lo, min(x, hi))\n")
    result = commit_tree(repo, {"app.py": APP.replace("    return max(lo, min(x, hi))\n", other)})
    assert evidence(repo, base, result) == ["0/2", "app.py:5-6 not run by any test"]


def test_a_module_the_tests_never_import_and_test_files_left_out(project: tuple[GitRepo, str]) -> None:
    repo, base = project
    result = commit_tree(repo, {"extra.py": "# helper\n\ndef f():\n    return 1\n",
                                "tests/test_app.py": TESTS + "\n\ndef test_more():\n    assert clamp(5, 0, 1) == 1\n",
                                "README.md": "words\n"})
    assert evidence(repo, base, result) == ["0/2", "extra.py:3-4 never imported by the tests"]


def test_a_patch_that_changes_no_code_has_no_share() -> None:
    lines = measure({"README.md": [1]}, {}, text_of=lambda p: None, is_test=is_test_file)
    assert lines.share is None and lines.not_run() == []


@pytest.mark.parametrize("data, reason", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "no line data"),
    (b'{"meta": {}}', "no line data"),
])
def test_a_broken_report_is_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(CoverageReportError, match=reason):
        read_coverage(data)


def test_hostile_line_data_is_ignored_not_trusted() -> None:
    files = {"app.py": {"executed_lines": ["1", None, 2.0, 3], "missing_lines": "all"}}
    lines = measure({"app.py": [1, 2, 3]}, files, text_of=lambda p: "a\nb\nc\n", is_test=is_test_file)
    assert (lines.run, lines.changed) == (1, 1)


def test_ranges() -> None:
    assert ranges([7, 1, 2, 3, 9, 10]) == "1-3, 7, 9-10"
    assert ranges([]) == ""
