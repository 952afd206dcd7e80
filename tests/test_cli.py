"""The command line as users meet it: exit codes, messages, init, status, demo."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from errauto_daemon.main import main
from tests.helpers.cli import run
from tests.helpers.gitrepo import CALC, PYTHON, GitRepo, tools_on_path


def fix_patch(project: GitRepo, tmp_path: Path, edit: tuple[str, str] = ("a - b", "a + b")) -> Path:
    patch = tmp_path / "fix.patch"
    patch.write_bytes(project.make_patch({"calc.py": CALC.replace(*edit)}))
    return patch


def test_real_cli_as_a_subprocess(project: GitRepo, tmp_path: Path) -> None:
    patch = fix_patch(project, tmp_path)
    proc = subprocess.run([PYTHON, "-m", "errauto_daemon", "apply", str(patch), "--repo", str(project.path)],
                          capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("#1 merged into main")
    listing = subprocess.run([PYTHON, "-m", "errauto_daemon", "queue", "list"], capture_output=True,
                             text=True, env=os.environ.copy())
    assert listing.returncode == 0 and "merged" in listing.stdout and "auto_merge" in listing.stdout


@pytest.mark.parametrize("args, message", [
    (["apply", "/nonexistent/fix.patch"], "no such patch file"),
    (["queue", "show", "999"], "no submission 999"),
    (["queue", "approve", "999"], "no submission 999"),
    (["queue", "list", "--status", "done"], "unknown state"),
])
def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], args: list[str],
                                           message: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_not_a_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patch = tmp_path / "x.patch"
    patch.write_text("diff --git a/x b/x\n")
    code, _, err = run(capsys, "apply", str(patch), "--repo", str(tmp_path))
    assert code == 2 and "not a git repository" in err


def test_argparse_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["apply"])
    assert info.value.code == 2


def test_rejected_patch_exits_4(project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patch = tmp_path / "garbage.patch"
    patch.write_text("this is not a patch at all\n")
    code, out, _ = run(capsys, "apply", str(patch), "--repo", str(project.path))
    assert code == 4
    assert "rejected" in out and "no diff found" in out


def test_internal_error_exits_3_and_writes_a_log(project: GitRepo, tmp_path: Path, state_dir: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_must_never_be_logged_123")
    patch = fix_patch(project, tmp_path)
    # A real fault: the worktree cache cannot be created (a file is in the way).
    (state_dir / "cache").mkdir(parents=True)
    (state_dir / "cache" / "worktrees").write_text("not a directory")

    code, out, err = run(capsys, "apply", str(patch), "--repo", str(project.path))

    assert code == 3
    assert "internal error" in err and "a log with the traceback was written to" in err
    log = Path(err.strip().rsplit(" ", 1)[-1])
    text = log.read_text()
    assert "Traceback" in text and "errauto 0.1.0" in text and "libgit2" in text
    assert "ghp_must_never_be_logged_123" not in text
    code, out, _ = run(capsys, "queue", "show", "1", "--json")
    assert json.loads(out)["state"] == "failed"
    assert project.head("main") == project.head()


def test_duplicate_submission_shows_the_first_decision(project: GitRepo, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    patch = fix_patch(project, tmp_path)
    assert run(capsys, "apply", str(patch), "--repo", str(project.path))[0] == 0
    # The same change, made as a differently-shaped diff (more context): same patch id.
    project.git("reset", "-q", "--hard", "HEAD~1")
    again = tmp_path / "again.patch"
    again.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}).replace(b"@@", b"@@", 1))
    code, out, _ = run(capsys, "apply", str(again), "--repo", str(project.path))
    assert code == 0
    assert "already submitted as #1" in out
    code, out, _ = run(capsys, "queue", "list", "--json")
    assert len(json.loads(out)) == 1


def test_queue_list_and_show(project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "apply", str(fix_patch(project, tmp_path, ("a * b", "a * b + 1"))), "--repo", str(project.path))
    code, out, _ = run(capsys, "queue", "list")
    assert code == 0
    header, rule, row = out.splitlines()[:3]
    assert header.split()[:4] == ["ID", "STATE", "ROUTE", "CONF"]
    assert row.split()[:4] == ["1", "awaiting_review", "review", "0.33"]
    code, out, _ = run(capsys, "queue", "list", "--status", "merged")
    assert code == 0 and out.startswith("no submissions")
    code, out, _ = run(capsys, "queue", "show", "1")
    assert code == 0
    assert "tests  failed" in out and "checks:" in out and "1-tests.log" in out
    assert "history:" in out and "validating -> awaiting_review" in out
    code, out, _ = run(capsys, "queue", "show", "1", "--json")
    shown = json.loads(out)
    assert Path(shown["checks"][0]["log"]).read_text().startswith("$ ")
    assert Path(shown["patch"]).read_bytes().startswith(b"diff --git")


def test_status_counts(project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "apply", str(fix_patch(project, tmp_path)), "--repo", str(project.path))
    bad = tmp_path / "bad.patch"
    bad.write_text("garbage\n")
    run(capsys, "apply", str(bad), "--repo", str(project.path))
    code, out, _ = run(capsys, "status", "--json")
    counts = json.loads(out)
    assert counts["states"]["merged"] == 1 and counts["states"]["rejected"] == 1
    assert counts["routes"] == {"auto_merge": 1, "rejected": 1}
    code, out, _ = run(capsys, "status")
    assert code == 0 and "2 submissions; 0 pending" in out


def test_init_writes_config_creates_inbox_and_excludes_it(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # init enables only checks whose tool is installed and which pass: a mypy that passes.
    monkeypatch.setenv("PATH", tools_on_path(tmp_path / "bin", {"mypy": "#!/bin/sh\nexit 0\n"}))
    repo = GitRepo(tmp_path / "proj")
    repo.commit("init", {"pyproject.toml": "[project]\nname='x'\n[tool.pytest.ini_options]\n[tool.mypy]\n",
                         "tests/test_x.py": "def test(): pass\n"})
    code, out, _ = run(capsys, "init", "--repo", str(repo.path))
    assert code == 0
    text = repo.read(".errauto.toml")
    assert ('[checks.tests]\ncommand = "python -m pytest -q --junitxml=.errauto/junit.xml --cov '
            '--cov-report=json:.errauto/coverage.json"') in text
    assert '[checks.typecheck]\ncommand = "mypy ."' in text
    assert "next steps" in out
    assert (repo.path / "patches").is_dir()
    assert "/patches/" in (repo.path / ".git" / "info" / "exclude").read_text()
    assert repo.git("status", "--porcelain").strip() == "?? .errauto.toml\n?? .gitignore"  # .errauto/ ignored
    from errauto_daemon import config
    cfg = config.load(repo.pygit2())
    assert [c.name for c in cfg.checks][:1] == ["tests"]
    code, _, err = run(capsys, "init", "--repo", str(repo.path))
    assert code == 2 and "already exists" in err
    assert run(capsys, "init", "--repo", str(repo.path), "--force")[0] == 0


def test_demo_shows_each_route_but_pull_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(capsys, "demo", "--dir", str(tmp_path / "demo"))
    assert code == 0
    table = out.split("ID  STATE", 1)[1].split("\n\n", 1)[0]
    rows = {line.split()[0]: line.split()[1:3] for line in table.splitlines() if line[:1].isdigit()}
    assert rows == {  # (the whole output is shown if this fails)
        "1": ["merged", "auto_merge"],
        "2": ["awaiting_review", "review"],
        "3": ["awaiting_review", "review"],
        "4": ["awaiting_review", "review"],
        "5": ["rejected", "rejected"],
        "6": ["rejected", "rejected"],
        "7": ["awaiting_review", "review"],
    }, out
    assert "GitHub not configured" in out
    # One line per sample patch says what it shows, and no line claims a pull request was opened.
    shows = [line.split("dropped ", 1)[1] for line in out.splitlines() if line.startswith("  dropped ")]
    assert shows == [
        "0001-median-of-an-even-count.patch: passes every check → merged by itself",
        "0002-mean-of-nothing.patch: fails lint: confidence 0.75, under the pull-request bar 0.80 → held for review",
        "0003-integer-mean.patch: breaks the tests, a gate → held for review",
        "0004-value-range.patch: fails only the docs check: 0.85 earns a pull request, "
        "but the demo has no GitHub → held for review",
        "0005-stale-docstring.patch: no longer applies to main → rejected",
        "0006-helper-script.patch: writes through a symlink out of the repository → rejected, nothing written",
        "0007-rounded-mean.patch: puts a bug in mean and skips the test that catches it: every check passes, "
        "but it weakens the tests → held for review",
    ], out
    assert not Path("/tmp/errauto-demo.sh").exists()
    assert str(tmp_path / "demo" / "project") in out
    # The tamper case is held with its reason: the skip, where it is, and that the test passed on the base.
    monkeypatch.setenv("ERRAUTO_HOME", str(tmp_path / "demo" / "state"))
    if os.environ.get("ERRAUTO_DATABASE_URL"):  # as the demo's last line says: its state is its SQLite file
        assert "ERRAUTO_DATABASE_URL=sqlite ERRAUTO_HOME=" in out
        monkeypatch.setenv("ERRAUTO_DATABASE_URL", "sqlite")
    tamper = json.loads(run(capsys, "queue", "show", "7", "--json")[1])
    assert tamper["confidence"] == 1.0
    assert tamper["explanation"]["gates_hit"] == [
        "weakens the tests: test_stats.py::StatsTest::test_mean is now skipped (flaky)",
        "weakens the tests: test_stats.py:7 adds @unittest.skip to StatsTest::test_mean, which passed on the base",
    ]
    assert tamper["reason"].startswith("confidence 1.00 clears auto-merge, but weakens the tests: ")
    # The test that breaks is named, with its failure.
    broken = json.loads(run(capsys, "queue", "show", "3", "--json")[1])
    assert broken["explanation"]["parts"][0]["detail"] == (
        "breaks test_stats.py::StatsTest::test_mean: AssertionError: 2 != 2.5")


def test_a_failing_git_command_is_an_internal_error_in_gits_words(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    patch = fix_patch(project, tmp_path)
    # Every git command fails (pygit2 does not read this file): the first one
    # errauto runs is the merge's look at the target's checkouts.
    broken = tmp_path / "broken.gitconfig"
    broken.write_text("[core\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(broken))

    code, out, err = run(capsys, "apply", str(patch), "--repo", str(project.path))

    assert code == 3 and err.count("\n") == 1
    assert err.startswith("errauto: internal error (GitError: git worktree failed: fatal: bad config line 1 in file")
    assert "a log with the traceback was written to" in err
    code, out, _ = run(capsys, "queue", "show", "1", "--json")
    assert json.loads(out)["state"] == "failed" and json.loads(out)["reason"] == "internal error: GitError"


@pytest.mark.slow
def test_the_demo_keeps_to_its_own_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's queue is its own: the process environment and the user's state stay as they were."""
    before = dict(os.environ)
    code, out, _ = run(capsys, "demo", "--dir", str(tmp_path / "demo"))
    assert code == 0, out
    assert dict(os.environ) == before
    assert (tmp_path / "demo" / "state" / "errauto.db").exists()
    assert not (tmp_path / "state" / "errauto.db").exists()
    assert run(capsys, "queue", "list", "--json")[1].strip() == "[]"


@pytest.mark.slow
def test_the_demo_runs_on_a_machine_without_bubblewrap_and_says_its_checks_ran_unsandboxed(
        tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    git_program = shutil.which("git")
    assert git_program is not None
    (tools / "git").symlink_to(git_program)
    env = dict(os.environ, PATH=str(tools))
    done = subprocess.run([PYTHON, "-m", "errauto_daemon", "demo", "--dir", str(tmp_path / "demo")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sandbox: none here: checks run in a sandbox, and bwrap (bubblewrap) was not found on PATH" in done.stdout
    assert 'sandbox = "off"' in (tmp_path / "demo" / "project" / ".errauto.toml").read_text()
    table = done.stdout.split("ID  STATE", 1)[1].split("\n\n", 1)[0]
    assert [line.split()[1] for line in table.splitlines() if line[:1].isdigit()] == [
        "merged", "awaiting_review", "awaiting_review", "awaiting_review", "rejected", "rejected", "awaiting_review"]
    env["ERRAUTO_HOME"] = str(tmp_path / "demo" / "state")
    if env.get("ERRAUTO_DATABASE_URL"):
        env["ERRAUTO_DATABASE_URL"] = "sqlite"  # the demo's state is its SQLite file, as its last line says
    shown = subprocess.run([PYTHON, "-m", "errauto_daemon", "queue", "show", "1"], capture_output=True, text=True,
                           env=env, timeout=60)
    assert "unsandboxed" in shown.stdout, shown.stdout
