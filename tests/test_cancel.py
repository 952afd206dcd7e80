"""Stopping a validation: `queue reject` on one being validated, and `daemon stop`
whatever a worker is doing (a check that never ends, a step stuck outside a check)."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from errauto_daemon import intake, paths
from errauto_daemon.domain import State
from errauto_daemon.errors import Cancelled, FatalError
from errauto_daemon.main import main
from errauto_daemon.store import CANCEL_REQUESTED, REJECTED_NOW, Store, Submission
from tests.helpers.daemon import DaemonProcess, drop, start, wait_until
from tests.helpers.gitrepo import CALC, PYTHON, GitRepo, config_toml, python_project

FIXED = CALC.replace("a - b", "a + b")


def sleeping_check(pid_file: Path) -> str:
    """A configuration whose one check writes its pid, then sleeps ten minutes.

    Unsandboxed: the pid goes to a file outside the worktree, which a sandbox
    hides, and a sandbox's pid is its own namespace's. tests/test_sandbox.py
    stops sandboxed checks the same ways."""
    return ('target = "main"\nsandbox = "off"\n[checks.tests]\n'
            f'command = ["sh", "-c", "echo $$ > {pid_file}; exec sleep 600"]\ntimeout = 3600\n')


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "errauto_daemon", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=timeout)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def claimed(store: Store, project: GitRepo, n: int) -> Submission:
    """A submission claimed for validation, as a validator in some process holds it."""
    sub = intake.submit(store, project.path, project.make_patch({f"n{n}.txt": f"{n}\n"}),
                        source="cli", name=f"p{n}").submission
    taken = store.claim(sub.id)
    assert taken is not None
    return taken


# -- the store: whichever commits first wins ----------------------------------------


def test_a_reject_recorded_first_stops_the_merge_and_only_its_rejection_is_recorded(project: GitRepo) -> None:
    store = Store()
    sub = claimed(store, project, 1)

    _, how = store.reject(sub.id, "rejected by ana: wrong approach", "rejected by ana")
    assert how == CANCEL_REQUESTED
    assert store.cancel_requested(sub.id) == "rejected by ana: wrong approach"
    with pytest.raises(Cancelled):
        store.begin_carrying_out(sub.id, "a merge", merge_intent="0" * 40)
    with pytest.raises(Cancelled):
        store.transition(sub.id, State.MERGED, reason=State.MERGED)
    with pytest.raises(Cancelled):
        store.requeue(sub.id, "interrupted")
    assert store.get(sub.id).merge_intent is None

    done = store.honour_cancel(sub.id)
    assert done is not None and done.state == "rejected"
    assert done.reason == "rejected by ana: wrong approach"
    assert [a.kind for a in store.alerts()][-1] == "rejected"


def test_a_merge_begun_first_refuses_the_reject_until_it_validates_again(project: GitRepo) -> None:
    store = Store()
    sub = claimed(store, project, 2)
    store.begin_carrying_out(sub.id, "a merge", merge_intent="1" * 40)

    with pytest.raises(FatalError, match="had begun a merge before the reject"):
        store.reject(sub.id, "rejected by ana: no", "rejected by ana")
    assert store.cancel_requested(sub.id) is None

    # The target moved: the merge did not happen, the patch is validated again; a reject counts again.
    store.add_event(sub.id, "revalidate", "main moved")
    assert store.reject(sub.id, "rejected by ana: no", "rejected by ana")[1] == CANCEL_REQUESTED


def test_reject_of_a_queued_submission_is_at_once_and_of_a_decided_one_refused(project: GitRepo) -> None:
    store = Store()
    sub = intake.submit(store, project.path, project.make_patch({"q.txt": "q\n"}), source="cli",
                        name="q").submission
    rejected, how = store.reject(sub.id, "rejected by ana: no", "rejected by ana")
    assert how == REJECTED_NOW and rejected.state == "rejected"
    with pytest.raises(FatalError, match="is rejected"):
        store.reject(sub.id, "rejected by ana: again", "rejected by ana")


def test_queue_reject_of_a_validation_whose_process_died_rejects_it_at_once(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store()
    sub = claimed(store, project, 3)  # validating, and nobody holds it: its process died
    assert main(["queue", "reject", str(sub.id), "--reason", "wrong approach"]) == 0
    assert "rejected" in capsys.readouterr().out
    after = store.get(sub.id)
    assert after.state == "rejected"
    assert after.reason is not None and after.reason.endswith(": wrong approach")


# -- queue reject while a check runs ----------------------------------------------------


@pytest.mark.slow
def test_queue_reject_kills_the_running_check_in_the_daemon_and_frees_the_worker(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    pid_file = tmp_path / "check.pid"
    project = python_project(tmp_path / "project", config=sleeping_check(pid_file))
    assert main(["watch", "add", str(project.path)]) == 0
    capsys.readouterr()
    tip = project.head("main")
    start(daemons, tmp_path, workers=1)
    drop(project.path / "patches", "fix.patch", project.make_patch({"calc.py": FIXED}))
    store = Store()
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the check to start")
    check_pid = int(pid_file.read_text())
    [sub] = store.submissions()
    assert sub.state == "validating"

    proc = cli("queue", "reject", str(sub.id), "--reason", "wrong approach")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"#{sub.id} rejected"), proc.stdout
    done = store.get(sub.id)
    assert done.state == "rejected"
    assert done.reason is not None and done.reason.endswith(": wrong approach")
    assert gone(check_pid)
    assert project.head("main") == tip
    assert (project.path / "patches" / "rejected" / f"{sub.id}-fix.patch").exists()
    [log] = (paths.check_logs_dir() / str(sub.id)).glob("*.log")
    assert "cancelled (rejected by" in log.read_text()

    # The one worker and its worktree are free: the next patch is validated.
    pid_file.unlink()
    drop(project.path / "patches", "other.patch", project.make_patch({"calc.py": FIXED + "# other\n"}))
    wait_until(pid_file.exists, what="the next submission's check to start")
    assert [s.state for s in store.submissions()] == ["validating", "rejected"]


@pytest.mark.slow
def test_queue_reject_stops_errauto_apply_in_another_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "check.pid"
    project = python_project(tmp_path / "project", config=sleeping_check(pid_file))
    patch = tmp_path / "fix.patch"
    patch.write_bytes(project.make_patch({"calc.py": FIXED}))
    tip = project.head("main")
    applying = subprocess.Popen([PYTHON, "-m", "errauto_daemon", "apply", str(patch), "--repo", str(project.path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the check to start")
        check_pid = int(pid_file.read_text())

        proc = cli("queue", "reject", "1", "--reason", "not this way")

        out, err = applying.communicate(timeout=60)
    finally:
        if applying.poll() is None:
            os.killpg(applying.pid, signal.SIGKILL)
            applying.wait()
        if pid_file.exists() and not gone(int(pid_file.read_text())):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)  # the check runs in its own group
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("#1 rejected"), proc.stdout
    assert applying.returncode == 4, out + err
    assert "rejected" in out and "not this way" in out
    assert gone(check_pid)
    assert project.head("main") == tip
    assert Store().get(1).state == "rejected"


# -- daemon stop ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_validation_that_outlasts_every_stop_fails_after_three_with_an_alert(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    pid_file = tmp_path / "check.pid"
    project = python_project(tmp_path / "project", config=sleeping_check(pid_file))
    assert main(["watch", "add", str(project.path)]) == 0
    capsys.readouterr()
    drop(project.path / "patches", "fix.patch", project.make_patch({"calc.py": FIXED}))
    store = Store()
    for attempt in (1, 2, 3):
        daemon = start(daemons, tmp_path, workers=1, grace=2.0)
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what=f"check run {attempt}")
        check_pid = int(pid_file.read_text())
        pid_file.unlink()

        assert daemon.terminate() == 0

        assert gone(check_pid)
        assert store.get(1).state == ("queued" if attempt < 3 else "failed")
    failed = store.get(1)
    assert "interrupted 3 times" in (failed.reason or "")
    assert any(a.kind == "daemon_error" and a.submission_id == 1 for a in store.alerts())


# `git worktree list`: the merge's look at the target's checkouts, the first
# git command a validation of this project runs.
GIT_STUCK_IN_WORKTREE_LIST = """#!/bin/sh
if [ "$1" = worktree ] && [ "$2" = list ] && [ -e {marker} ]; then
    echo $$ > {started}
    exec sleep 600
fi
exec {git} "$@"
"""


@pytest.mark.slow
def test_a_worker_stuck_in_git_does_not_hold_the_daemons_exit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess],
        monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    project = python_project(tmp_path / "project", config=config_toml(lint=False))
    assert main(["watch", "add", str(project.path)]) == 0
    capsys.readouterr()
    marker, started = tmp_path / "git-hangs", tmp_path / "git-stuck.pid"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real_git = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True).stdout.strip()
    (bin_dir / "git").write_text(GIT_STUCK_IN_WORKTREE_LIST.format(marker=marker, started=started, git=real_git))
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    marker.write_text("x")
    daemon = start(daemons, tmp_path, workers=1, grace=2.0)
    drop(project.path / "patches", "fix.patch", project.make_patch({"calc.py": FIXED}))
    wait_until(lambda: started.exists() and started.read_text().strip(), what="git to hang")
    stuck_git = int(started.read_text())
    try:
        # Bounded well below what waiting for every thread used to take (30 s a thread).
        assert daemon.terminate(timeout=20) == 0
    finally:
        os.kill(stuck_git, signal.SIGKILL)
    [said] = [line for line in (paths.log_dir() / "daemon.log").read_text().splitlines()
              if "threads still busy past the grace period" in line]
    busy = "jobs" if backend == "postgresql" else "worker-0"  # on a server, validations are jobs (jobs.py)
    assert busy in said and said.endswith("exiting anyway")

    # Left as it was, for the next start to recover: validated again and merged.
    store = Store()
    assert store.get(1).state == "validating"
    marker.unlink()
    start(daemons, tmp_path, workers=1)
    done = wait_until(lambda: store.get(1) if store.get(1).state == "merged" else None, what="the merge")
    assert done.attempts == 2


def test_daemon_status_says_which_validation_is_being_rejected(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store()
    sub = claimed(store, project, 4)
    store.reject(sub.id, "rejected by ana: no", "rejected by ana")
    assert main(["daemon", "status"]) == 1  # no daemon runs
    assert f"#{sub.id} " in (line := capsys.readouterr().out.splitlines()[-1]) and "being rejected" in line


def test_queue_reject_after_the_merge_began_is_refused_and_says_how_it_ended(project: GitRepo) -> None:
    from errauto_daemon.commands import queue

    store = Store()
    sub = claimed(store, project, 5)
    store.begin_carrying_out(sub.id, "a merge", merge_intent=project.head())
    with pytest.raises(FatalError, match="had begun a merge before the reject; it is validating now"):
        queue.reject(sub.id, "too slow", wait=0.2)
    store.transition(sub.id, State.MERGED, reason=State.MERGED, merged_commit=project.head())
    with pytest.raises(FatalError, match="is merged, not awaiting_review, queued or validating"):
        queue.reject(sub.id, "too slow", wait=0.2)
    assert store.get(sub.id).state == "merged"
