"""The daemon as a real subprocess: inbox drops, refs, submit, faults."""
from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from errauto_daemon.main import main
from errauto_daemon.store import DECIDED, Store
from tests.helpers.daemon import DaemonProcess, all_decided, drop, progress, start, wait_until
from tests.helpers.gitrepo import CALC, PYTHON, GitRepo, config_toml, git, python_project

FIXED = CALC.replace("a - b", "a + b")




def watched_project(tmp_path: Path, capsys: pytest.CaptureFixture[str], **kw: str) -> GitRepo:
    project = python_project(tmp_path / "project", **kw)
    assert main(["watch", "add", str(project.path)]) == 0
    capsys.readouterr()
    return project



def trivial_config(*, sleep: float = 0.0) -> str:
    # One fast check (no interpreter to start) that fails when the patch adds FAILED.
    return ('target = "main"\n[checks.tests]\n'
            f'command = ["sh", "-c", "sleep {sleep}; test ! -e FAILED"]\n')


def notes_patch(repo: GitRepo, i: int, *, fail: bool = False) -> bytes:
    edits: dict[str, str | bytes | None] = {f"notes/n{i:04d}.txt": f"note {i}\n"}
    if fail:
        edits["FAILED"] = f"{i}\n"
    return repo.make_patch(edits)


# -- inbox ------------------------------------------------------------------------


def test_dropped_patch_is_taken_decided_and_filed_by_fate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    project = watched_project(tmp_path, capsys)
    start(daemons, tmp_path)
    inbox = project.path / "patches"
    drop(inbox, "fix-add.patch", project.make_patch({"calc.py": FIXED}))
    drop(inbox, "garbage.patch", b"this is not a patch\n")
    (inbox / "notes.txt").write_text("not a patch suffix: never taken\n")
    (inbox / ".hidden.patch").write_bytes(project.make_patch({"calc.py": FIXED}))

    store = Store()
    subs = wait_until(lambda: all_decided(store, 2), what="two decisions")
    by_title = {s.title: s for s in subs}
    assert by_title["fix add"].state == "merged"
    assert by_title["garbage"].state == "rejected"
    merged = by_title["fix add"]
    wait_until((inbox / "merged" / f"{merged.id}-fix-add.patch").exists, what="the file filed under merged/")
    rejected = by_title["garbage"]
    reason = inbox / "rejected" / f"{rejected.id}-garbage.patch.reason.txt"
    wait_until(reason.exists, what="the reason file")
    assert "no diff found" in reason.read_text()
    assert (inbox / "notes.txt").exists() and (inbox / ".hidden.patch").exists()
    assert "a + b" in project.read("calc.py")
    assert project.git("status", "--porcelain") == ""  # the inbox is excluded from git


def test_slow_writer_is_taken_only_when_complete(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    project = watched_project(tmp_path, capsys)
    start(daemons, tmp_path, rescan=0.3)
    data = project.make_patch({"calc.py": FIXED})
    with open(project.path / "patches" / "slow.patch", "wb") as fh:
        for i in range(0, len(data), 40):
            fh.write(data[i:i + 40])
            fh.flush()
            time.sleep(0.1)  # several rescans happen while it is being written
    store = Store()
    [sub] = wait_until(lambda: all_decided(store, 1), what="the decision")
    assert sub.state == "merged", sub.reason
    assert len(store.submissions()) == 1


def test_files_present_at_start_and_while_stopped_are_taken(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    project = watched_project(tmp_path, capsys)
    drop(project.path / "patches", "early.patch", project.make_patch({"calc.py": FIXED}))
    start(daemons, tmp_path)
    store = Store()
    [sub] = wait_until(lambda: all_decided(store, 1), what="the decision")
    assert sub.state == "merged" and sub.source == "inbox"


@pytest.mark.slow
def test_a_thousand_files_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  daemons: list[DaemonProcess]) -> None:
    project = watched_project(tmp_path, capsys, config=trivial_config())
    staging = tmp_path / "staging"
    staging.mkdir()
    for i in range(1000):
        # Every patch fails its check: held for review, so none moves the target.
        (staging / f"p{i:04d}.patch").write_bytes(notes_patch(project, i, fail=True))
    start(daemons, tmp_path)
    inbox = project.path / "patches"
    for path in staging.iterdir():
        os.rename(path, inbox / path.name)
    store = Store()
    try:
        subs = wait_until(lambda: all_decided(store, 1000), timeout=300, poll=0.5, what="1000 decisions")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; queue: {progress(store)}; inbox: "
                             f"{ {p.name: len(list(p.iterdir())) for p in inbox.iterdir() if p.is_dir()} }") from None
    assert len(subs) == 1000
    assert {s.state for s in subs} == {"awaiting_review"}
    # Files are moved just after their decision is recorded.
    wait_until(lambda: len(list((inbox / "review").iterdir())) == 1000, what="every file filed under review/")
    assert [p for p in inbox.iterdir() if p.is_file()] == []


# -- refs ---------------------------------------------------------------------


def test_commit_to_a_submit_branch_becomes_a_submission(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    project = watched_project(tmp_path, capsys, config=config_toml(top='submit_refs = ["refs/heads/fix/*"]\n'))
    start(daemons, tmp_path)
    project.git("checkout", "-q", "-b", "fix/add")
    project.commit("Make add() add", {"calc.py": FIXED})
    project.git("checkout", "-q", "main")
    store = Store()
    [sub] = wait_until(lambda: all_decided(store, 1), what="the decision")
    assert sub.source == "ref" and sub.source_detail == "refs/heads/fix/add"
    assert sub.title == "Make add() add" and sub.author == "Test Author <test@example.com>"
    assert sub.state == "merged"
    assert "a + b" in project.git("show", "main:calc.py")


def test_push_to_refs_for_main_on_a_watched_bare_repository(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    seed = python_project(tmp_path / "seed")
    server = tmp_path / "server.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed.path), str(server))
    assert main(["watch", "add", str(server)]) == 0
    capsys.readouterr()
    start(daemons, tmp_path)
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(server), str(dev))
    (dev / "calc.py").write_text(FIXED)
    git(dev, "commit", "-qam", "Fix add")
    git(dev, "push", "-q", "origin", "HEAD:refs/for/main")
    store = Store()
    [sub] = wait_until(lambda: all_decided(store, 1), what="the decision")
    assert sub.state == "merged" and sub.source_detail == "refs/for/main"
    assert git(server, "log", "-1", "--format=%s", "main").strip() == "Fix add"
    # Pushing the same change again does not make a second submission.
    git(dev, "commit", "-q", "--amend", "--no-edit", "--date=2026-02-02T00:00:00")
    git(dev, "push", "-q", "-f", "origin", "HEAD:refs/for/main")
    time.sleep(2)
    assert len(store.submissions()) == 1


# -- submit --------------------------------------------------------------------


def test_submit_wait_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    daemons: list[DaemonProcess]) -> None:
    project = watched_project(tmp_path, capsys)
    good = tmp_path / "good.patch"
    good.write_bytes(project.make_patch({"calc.py": FIXED}))
    # Recorded while no daemon runs: it waits in the queue.
    assert main(["submit", str(good), "--repo", str(project.path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("#1 queued") and "no daemon is running" in err
    start(daemons, tmp_path)
    bad = tmp_path / "bad.patch"
    bad.write_bytes(project.make_patch({"calc.py": CALC.replace("a * b", "a * b + 1")}))
    proc = subprocess.run([PYTHON, "-m", "errauto_daemon", "submit", str(good), str(bad), "--repo",
                           str(project.path), "--wait", "--timeout", "60", "--json"],
                          capture_output=True, text=True, env=os.environ.copy())
    results = json.loads(proc.stdout)
    assert [r["state"] for r in results] == ["merged", "awaiting_review"]
    assert results[0]["duplicate"] is True
    assert proc.returncode == 1  # the most severe: held for review


def test_second_daemon_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  daemons: list[DaemonProcess]) -> None:
    watched_project(tmp_path, capsys)
    first = start(daemons, tmp_path)
    proc = subprocess.run([PYTHON, "-m", "errauto_daemon", "daemon", "run"], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=60)
    assert proc.returncode == 2
    assert f"already running (pid {first.pid})" in proc.stderr
    assert main(["daemon", "status", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["running"] and info["alive"] and info["pid"] == first.pid


def test_start_stop_status_via_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    watched_project(tmp_path, capsys)
    try:
        assert main(["daemon", "start"]) == 0
        assert "errauto daemon started" in capsys.readouterr().out
        assert main(["daemon", "start"]) == 0
        assert "already running" in capsys.readouterr().out
        assert main(["daemon", "status"]) == 0
        out = capsys.readouterr().out
        assert "alive" in out and "watching 1 repositories" in out
    finally:
        assert main(["daemon", "stop"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert main(["daemon", "status"]) == 1
    assert "not running" in capsys.readouterr().out


def test_install_service_writes_a_user_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["daemon", "install-service"]) == 0
    unit = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "errauto.service"
    text = unit.read_text()
    assert f"ExecStart={PYTHON} -m errauto_daemon daemon run" in text
    assert f"Environment=ERRAUTO_HOME={os.environ['ERRAUTO_HOME']}" in text
    assert main(["daemon", "install-service"]) == 2


# -- faults ----------------------------------------------------------------------


def test_sigterm_during_a_long_check_requeues_and_exits_cleanly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    marker = tmp_path / "slow-now"
    marker.write_text("x")
    started = tmp_path / "check-started"
    script = (f"import os, pathlib, time; pathlib.Path({str(started)!r}).write_text(str(os.getpid())); "
              f"time.sleep(120 if pathlib.Path({str(marker)!r}).exists() else 0)")
    # The check tells its pid through a file outside its worktree and reads the marker
    # there: unsandboxed (a sandbox hides both, and would give its namespace's pid).
    project = watched_project(tmp_path, capsys, config=config_toml(
        top='sandbox = "off"', extra=f'[checks.slow]\ncommand = ["{PYTHON}", "-c", "{script}"]\nweight = 0.1\n'))
    daemon = start(daemons, tmp_path, grace=1.0)
    drop(project.path / "patches", "fix.patch", project.make_patch({"calc.py": FIXED}))
    wait_until(started.exists, what="the slow check to start")
    check_pid = int(started.read_text())

    assert daemon.terminate() == 0

    store = Store()
    [sub] = store.submissions()
    assert sub.state == "queued"
    assert any("stopping" in (e["detail"] or "") for e in store.events(sub.id))
    with pytest.raises(ProcessLookupError):
        os.kill(check_pid, 0)
    marker.unlink()
    start(daemons, tmp_path)
    [sub] = wait_until(lambda: all_decided(store, 1), what="the decision after restart")
    assert sub.state == "merged"


@pytest.mark.slow
def test_sigkill_at_random_moments_decides_everything_exactly_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    project = watched_project(tmp_path, capsys, config=trivial_config(sleep=0.05))
    store = Store()
    from errauto_daemon import intake
    for i in range(100):
        intake.submit(store, project.path, notes_patch(project, i, fail=i % 4 == 0), source="cli",
                      name=f"n{i}.patch")
    rng = random.Random(1234)
    # One worker: with two, mergeable patches keep moving each other's
    # target, and a patch could be held for review after its revalidations.
    for _ in range(5):
        daemon = start(daemons, tmp_path, workers=1)
        time.sleep(rng.uniform(0.3, 2.5))
        daemon.kill()
    start(daemons, tmp_path, workers=1)
    subs = wait_until(lambda: all_decided(store, 100), timeout=240, poll=0.5, what="100 decisions")

    assert len(subs) == 100
    for sub in subs:
        decisions = [e for e in store.events(sub.id) if e["to_state"] in DECIDED]
        assert len(decisions) == 1, (sub.id, store.events(sub.id))
        expected = "awaiting_review" if int(sub.title[1:]) % 4 == 0 else "merged"
        assert sub.state == expected, (sub.id, sub.state, sub.reason)
    # No merge happened twice: each submission's commit is on main at most once.
    log = project.git("log", "--format=%B", "main")
    counts = [log.count(f"Errauto-Submission: {s.id}\n") for s in subs]
    assert all(c == (1 if s.state == "merged" else 0) for c, s in zip(counts, subs))
    files = project.git("ls-tree", "-r", "--name-only", "main", "notes/").split()
    assert len(files) == 75
    # The kills did land mid-work (or this test would prove nothing).
    interrupted = [s.id for s in subs if any("interrupted" in (e["detail"] or "") for e in store.events(s.id))]
    assert interrupted


@pytest.mark.slow
def test_eight_processes_submitting_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            daemons: list[DaemonProcess]) -> None:
    project = watched_project(tmp_path, capsys, config=trivial_config())
    batches = []
    for p in range(8):
        folder = tmp_path / f"batch{p}"
        folder.mkdir()
        for i in range(50):
            n = p * 50 + i
            (folder / f"n{n}.patch").write_bytes(notes_patch(project, n, fail=True))
        batches.append(sorted(str(x) for x in folder.iterdir()))
    start(daemons, tmp_path)
    procs = [subprocess.Popen([PYTHON, "-m", "errauto_daemon", "submit", *batch, "--repo", str(project.path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
             for batch in batches]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    store = Store()
    subs = wait_until(lambda: all_decided(store, 400), timeout=300, poll=0.5, what="400 decisions")
    assert len(subs) == 400
    assert len({s.dedup_key for s in subs}) == 400


def test_drops_are_taken_by_their_events_not_by_rescans(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    project = watched_project(tmp_path, capsys, config=trivial_config())
    start(daemons, tmp_path, rescan=3600)  # only the start-up scan
    staging = tmp_path / "elsewhere"
    staging.mkdir()
    store = Store()
    for i in range(5):
        # Renamed in from another folder (inotify: a creation), and written in place (a close).
        (staging / f"r{i}.patch").write_bytes(notes_patch(project, i, fail=True))
        os.rename(staging / f"r{i}.patch", project.path / "patches" / f"r{i}.patch")
        (project.path / "patches" / f"w{i}.patch").write_bytes(notes_patch(project, 100 + i, fail=True))
    subs = wait_until(lambda: all_decided(store, 10), timeout=30, what="ten decisions")
    assert sorted((s.source_detail for s in subs), key=str) == sorted([f"r{i}.patch" for i in range(5)]
                                                          + [f"w{i}.patch" for i in range(5)])


@pytest.mark.slow
def test_a_burst_of_mergeable_patches_all_merge(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    """Two workers, every patch mergeable: each merge moves the target under the
    other worker. A patch whose merge found the target moved validates again
    holding the merge lock, so one revalidation is always enough."""
    config = trivial_config(sleep=0.1).replace('target = "main"\n', 'target = "main"\nmax_revalidations = 1\n')
    project = watched_project(tmp_path, capsys, config=config)
    store = Store()
    from errauto_daemon import intake
    for i in range(30):
        intake.submit(store, project.path, notes_patch(project, i), source="cli", name=f"n{i}.patch")
    start(daemons, tmp_path, workers=2)
    subs = wait_until(lambda: all_decided(store, 30), timeout=180, poll=0.2, what="30 decisions")
    assert {s.state for s in subs} == {"merged"}, [(s.id, s.state, s.reason) for s in subs if s.state != "merged"]
    revalidated = [s.id for s in subs if any(e["kind"] == "revalidate" for e in store.events(s.id))]
    assert revalidated  # the race did happen
    assert len(project.git("ls-tree", "--name-only", "main", "notes/").split()) == 30


def test_an_inotify_overflow_reported_by_watchdog_triggers_a_rescan() -> None:
    """watchdog reports a kernel queue overflow only through its log: the
    daemon's handler there must queue a rescan of every watched repository."""
    import logging

    from errauto_daemon.daemon import Daemon, OverflowRescan

    daemon = Daemon()
    daemon.watched = {"/srv/a": [], "/srv/b": []}
    handler = OverflowRescan(daemon)
    logger = logging.getLogger("watchdog.observers.inotify_c")
    logger.addHandler(handler)
    try:
        logger.warning("Inotify queue overflowed; filesystem events were lost")
        logger.warning("something else entirely")
    finally:
        logger.removeHandler(handler)
    queued = [daemon.intake_q.get_nowait() for _ in range(daemon.intake_q.qsize())]
    assert queued == [("scan", "/srv/a"), ("scan", "/srv/b")]
    assert daemon.wakeup.is_set()


# -- one repository's intake never waits for another's -------------------------------


def _reader_waits_on(fifo: Path) -> int | None:
    """A write end of `fifo` once someone has it open for reading (else None)."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


def test_a_patch_stuck_in_one_repositorys_intake_does_not_hold_up_another(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    """Taking a.patch in project A blocks for real: reading A's working-tree
    configuration, which the test has made a FIFO nobody writes. A drop into
    project B is recorded meanwhile, while A's is still not."""
    a = watched_project(tmp_path / "a", capsys, config=trivial_config())
    b = watched_project(tmp_path / "b", capsys, config=trivial_config())
    start(daemons, tmp_path, rescan=3600)
    patch_a, patch_b = notes_patch(a, 1), notes_patch(b, 2)
    committed = (a.path / ".errauto.toml").read_bytes()
    fifo = a.path / ".errauto.toml"
    fifo.unlink()
    os.mkfifo(fifo)
    store = Store()
    writer = None
    try:
        drop(a.path / "patches", "a.patch", patch_a)
        writer = wait_until(lambda: _reader_waits_on(fifo), timeout=30, what="A's intake to block on the FIFO")
        drop(b.path / "patches", "b.patch", patch_b)
        [sub_b] = wait_until(lambda: store.submissions(repo=str(b.path)), timeout=30,
                             what="B's drop recorded while A's intake is stuck")
        assert sub_b.source_detail == "b.patch"
        assert store.submissions(repo=str(a.path)) == []  # A's is still being taken
    finally:
        staged = tmp_path / "config.toml"
        staged.write_bytes(committed)
        os.replace(staged, fifo)  # later reads find the file; the stuck one gets end-of-file
        if writer is not None:
            os.close(writer)
    [sub_a] = wait_until(lambda: store.submissions(repo=str(a.path)), timeout=30, what="A's drop recorded")
    assert sub_a.source_detail == "a.patch"


# -- the state directory deleted under a running daemon ----------------------------------


def _held_elsewhere(lock_file: Path) -> bool:
    from errauto_daemon.locks import FileLock

    if not lock_file.exists():
        return False
    probe = FileLock(lock_file)
    if probe.acquire():
        probe.release()
        return False
    return True


@pytest.mark.sqlite_only("the database file deleted under the daemon")
def test_a_deleted_state_directory_stops_the_daemon_with_an_alert_and_no_more_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from tests.helpers.fake_slack import FakeSlack

    project = watched_project(tmp_path, capsys, config=trivial_config())
    patch = notes_patch(project, 1)
    tip = project.head("main")
    with FakeSlack() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        daemon = start(daemons, tmp_path)
        # Its alerts thread holds the outbox lock (taken once, at its start).
        outbox_lock = Path(os.environ["ERRAUTO_HOME"]) / "locks" / "outbox.lock"
        wait_until(lambda: _held_elsewhere(outbox_lock), what="the daemon delivering alerts")
        shutil.rmtree(os.environ["ERRAUTO_HOME"])
        drop(project.path / "patches", "after.patch", patch)
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=60) == 5
        output = daemon.log.read_text()
        assert "was deleted while the daemon ran: it stopped taking work" in output
        assert any("errauto state lost" in r.text for r in slack.received), [r.text for r in slack.received]
    # Nothing was taken into the lost state: the file waits for the next daemon, the target did not move.
    assert (project.path / "patches" / "after.patch").exists()
    assert project.head("main") == tip
    assert not (Path(os.environ["ERRAUTO_HOME"]) / "errauto.db").exists()
