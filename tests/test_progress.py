"""Progress while checks run: on a terminal, in the daemon's log, and nowhere else."""
from __future__ import annotations

import errno
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from errauto_daemon.main import main
from tests.helpers.daemon import DaemonProcess
from tests.helpers.gitrepo import PYTHON, GitRepo

# A check slow enough to be seen running; the patch adding FAILED fails it.
SLOW_CHECK = 'target = "main"\n[checks.tests]\ncommand = ["sh", "-c", "sleep 1.2; test ! -e FAILED"]\n'


@pytest.fixture
def slow_project(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "slow")
    repo.commit("initial", {"README": "hello\n", ".errauto.toml": SLOW_CHECK})
    return repo


def note_patch(repo: GitRepo, tmp_path: Path, name: str = "note.patch") -> Path:
    path = tmp_path / name
    path.write_bytes(repo.make_patch({"NOTE.txt": "a note\n"}))
    return path


def run_cli(args: Sequence[str], *, stderr_tty: bool) -> tuple[int, str, str]:
    """The real CLI; its stderr a pseudo-terminal (what is drawn there is returned) or a pipe."""
    command = [PYTHON, "-m", "errauto_daemon", *args]
    if not stderr_tty:
        proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=os.environ.copy(), timeout=120)
        return proc.returncode, proc.stdout, proc.stderr
    controller, terminal = os.openpty()
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal,
                          env=os.environ.copy()) as child:
        os.close(terminal)
        drawn = b"".join(_read_until_closed(controller))
        assert child.stdout is not None
        out = child.stdout.read().decode()
        code = child.wait(timeout=120)
    return code, out, drawn.decode(errors="replace").replace("\r\n", "\n")


def _read_until_closed(fd: int) -> Iterator[bytes]:
    try:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError as exc:
                if exc.errno == errno.EIO:  # Linux: every writer closed the terminal
                    return
                raise
            if not chunk:
                return
            yield chunk
    finally:
        os.close(fd)


def test_apply_on_a_terminal_shows_phases_and_each_check_with_its_time(
        slow_project: GitRepo, tmp_path: Path) -> None:
    code, out, drawn = run_cli(["apply", str(note_patch(slow_project, tmp_path)), "--repo",
                                str(slow_project.path)], stderr_tty=True)
    assert code == 0, drawn
    assert out.startswith("#1 merged into main")
    assert "validating submission 1" in drawn
    for phase in ("applying on main", "preparing worktree", "running checks", "merging"):
        assert phase in drawn, drawn
    # While it runs, the check's line is drawn and redrawn in place; then its result stays.
    assert re.search(r"\r +tests +running +\d+\.\ds", drawn), drawn
    assert re.search(r"\r +tests +passed +\d+\.\ds\x1b\[K\n", drawn), drawn
    assert drawn.index("running checks") < drawn.index("passed") < drawn.index("merging")


def test_apply_without_a_terminal_prints_only_the_decision(slow_project: GitRepo, tmp_path: Path) -> None:
    code, out, err = run_cli(["apply", str(note_patch(slow_project, tmp_path)), "--repo",
                              str(slow_project.path)], stderr_tty=False)
    assert code == 0
    assert err == ""
    assert out.startswith("#1 merged into main")
    assert "running" not in out and "\r" not in out


def test_quiet_on_a_terminal_draws_nothing(slow_project: GitRepo, tmp_path: Path) -> None:
    code, out, drawn = run_cli(["apply", str(note_patch(slow_project, tmp_path)), "--repo",
                                str(slow_project.path), "--quiet"], stderr_tty=True)
    assert code == 0, drawn
    assert out.startswith("#1 merged into main")
    assert drawn == ""


@pytest.mark.slow
def test_queue_retry_on_a_terminal_shows_the_failing_check(slow_project: GitRepo, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    failing = tmp_path / "failing.patch"
    failing.write_bytes(slow_project.make_patch({"FAILED": "x\n"}))
    assert main(["apply", str(failing), "--repo", str(slow_project.path)]) == 1
    capsys.readouterr()
    code, out, drawn = run_cli(["queue", "retry", "1"], stderr_tty=True)
    assert code == 1, out
    assert re.search(r"\r +tests +failed +\d+\.\ds  exit 1", drawn), drawn
    code, out, drawn = run_cli(["queue", "retry", "1", "--quiet"], stderr_tty=True)
    assert code == 1 and drawn == ""


@pytest.mark.slow
def test_daemon_logs_each_check_and_submit_wait_shows_the_states(
        slow_project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "add", str(slow_project.path)]) == 0
    capsys.readouterr()
    daemon = DaemonProcess(tmp_path / "daemon-output.log").start()
    try:
        code, out, drawn = run_cli(["submit", str(note_patch(slow_project, tmp_path)), "--repo",
                                    str(slow_project.path), "--wait", "--timeout", "60"], stderr_tty=True)
        assert code == 0, drawn
        assert out.startswith("#1 merged into main")
        assert re.search(r"#1 queued +0\.0s", drawn), drawn
        # (validating is shown too, when a poll sees it: not asserted, it may be brief)
        assert re.search(r"#1 merged +\d+\.\ds", drawn), drawn
        second = tmp_path / "second.patch"
        second.write_bytes(slow_project.make_patch({"NOTE2.txt": "another\n"}))
        code, out, drawn = run_cli(["submit", str(second), "--repo", str(slow_project.path),
                                    "--wait", "--timeout", "60", "--quiet"], stderr_tty=True)
        assert code == 0 and drawn == ""
    finally:
        assert daemon.terminate() == 0
    log = (tmp_path / "state" / "log" / "daemon.log").read_text()
    assert re.search(r"INFO \[.*\] submission 1: check tests started", log), log
    assert re.search(r"INFO \[.*\] submission 1: check tests passed after \d+\.\ds", log), log
