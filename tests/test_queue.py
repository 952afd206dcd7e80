"""Deciding the queue: inbox files follow every decision, the safety rails of
approve / retry / submit, `queue process`, an unusable state directory."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from errauto_daemon import inbox
from errauto_daemon.main import main
from errauto_daemon.store import Store
from errauto_daemon.validate import Validator
from tests.helpers.cli import run
from tests.helpers.daemon import DaemonProcess, drop, start, wait_until
from tests.helpers.gitrepo import CALC, PYTHON, GitRepo, python_project

FIXED = CALC.replace("a - b", "a + b")
LINT_FAILS = CALC.replace("a - b", "a + b  " + "#" * 80)  # held for review: lint fails, tests pass
TESTS_FAIL = CALC.replace("a * b", "a * b + 1")  # held for review: the tests gate fails
LONG_NEG = CALC.replace("return -a", "return -a  # " + "x" * 80)  # held (lint); merges beside FIXED
NEG = CALC.replace("return -a", "return 0 - a")  # merges beside FIXED
FIXED_NEG = FIXED.replace("return -a", "return 0 - a")  # on a project whose add() is fixed
FIXED_LONG_NEG = FIXED.replace("return -a", "return -a  # " + "x" * 80)
FIXED_MUL = FIXED.replace("a * b", "b * a")
DOES_NOT_APPLY = b"""diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a ^ b
+    return a + b
"""




def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "errauto_daemon", *args], capture_output=True, text=True,
                          env=env or os.environ.copy(), timeout=timeout)


def patch_file(tmp_path: Path, project: GitRepo, name: str, calc: str) -> Path:
    path = tmp_path / name
    path.write_bytes(project.make_patch({"calc.py": calc}))
    return path


def registered(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str = "project", *,
               fixed: bool = False, **kw: str) -> GitRepo:
    """A project the daemon would watch; `fixed`: its add() bug fixed, so its tests pass."""
    project = python_project(tmp_path / name, **kw)
    if fixed:
        project.commit("fix add", {"calc.py": FIXED})
    assert main(["watch", "add", str(project.path)]) == 0
    capsys.readouterr()
    return project


def with_inbox(tmp_path: Path, capsys: pytest.CaptureFixture[str],
               fixed: bool = False) -> tuple[GitRepo, str, Path, Store]:
    """A registered project with its inbox folder, and the store."""
    project = registered(tmp_path, capsys, fixed=fixed)
    root = str(project.path)
    patches = inbox.ensure_inbox(root)
    assert patches is not None
    return project, root, patches, Store()



def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# -- A: inbox files follow whoever decides ---------------------------------------


def test_a_dropped_copy_of_a_cli_submission_follows_the_daemons_decision(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    project = registered(tmp_path, capsys, fixed=True)
    patches = project.path / "patches"
    # 1: submitted while no daemon runs, then dropped and taken too.
    first = patch_file(tmp_path, project, "fix.patch", FIXED_NEG)
    assert main(["submit", str(first), "--repo", str(project.path)]) == 0
    assert inbox.take(Store(), str(project.path), drop(patches, "fix.patch", first.read_bytes())) is not None
    assert files_in(patches / "queued") == ["1-fix.patch"]
    # 2: turned down by `apply` (it did not apply then), dropped once it does.
    later = project.make_patch({"NOTES": "one\ntwo\n"})
    project.commit("notes", {"NOTES": "one\n"})
    dropped_later = tmp_path / "notes.patch"
    dropped_later.write_bytes(later)
    code, out, _ = run(capsys, "apply", str(dropped_later), "--repo", str(project.path))
    assert code == 4 and "rejected" in out
    project.git("reset", "-q", "--hard", "HEAD~1")
    # 3: held by `apply`, then dropped: a duplicate of a decided submission.
    held = patch_file(tmp_path, project, "held.patch", FIXED_LONG_NEG)
    assert main(["apply", str(held), "--repo", str(project.path)]) == 1
    capsys.readouterr()

    start(daemons, tmp_path)
    drop(patches, "notes.patch", later)
    drop(patches, "held.patch", held.read_bytes())

    store = Store()
    wait_until(lambda: [s.state for s in store.submissions()][::-1] == ["merged", "merged", "awaiting_review"],
               what="the fix and the notes merged")
    wait_until(lambda: files_in(patches / "merged") == ["1-fix.patch", "2-notes.patch"],
               what=f"both files in merged/ (queued/: {files_in(patches / 'queued')})")
    assert files_in(patches / "queued") == []
    assert files_in(patches / "duplicates") == ["3-held.patch", "3-held.patch.reason.txt"]
    assert "awaiting_review" in (patches / "duplicates" / "3-held.patch.reason.txt").read_text()


def test_queue_approve_reject_and_retry_move_the_inbox_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project, root, patches, store = with_inbox(tmp_path, capsys, fixed=True)
    taken = {}
    for name, calc in (("approve-me.patch", FIXED_LONG_NEG), ("reject-me.patch", FIXED_NEG),
                       ("retry-me.patch", FIXED_MUL)):
        sub = inbox.take(store, root, drop(patches, name, project.make_patch({"calc.py": calc})))
        assert sub is not None and sub.state == "queued"
        taken[name] = sub.id
    assert len(files_in(patches / "queued")) == 3
    # Decided by a path that does not settle files (as a daemon killed at
    # the wrong moment would leave it): the file still lies in queued/.
    held = Validator(store).process(taken["approve-me.patch"])
    assert held.state == "awaiting_review"

    assert run(capsys, "queue", "retry", str(taken["retry-me.patch"]))[0] == 0
    assert run(capsys, "queue", "reject", str(taken["reject-me.patch"]), "--reason", "not this way")[0] == 0
    assert run(capsys, "queue", "approve", str(held.id))[0] == 0

    assert files_in(patches / "queued") == []
    merged = files_in(patches / "merged")
    assert merged == [f"{taken['approve-me.patch']}-approve-me.patch", f"{taken['retry-me.patch']}-retry-me.patch"]
    rejected = patches / "rejected" / f"{taken['reject-me.patch']}-reject-me.patch"
    assert rejected.exists()
    assert "not this way" in rejected.with_name(rejected.name + ".reason.txt").read_text()


def test_a_file_taken_before_files_were_recorded_is_still_settled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from errauto_daemon import intake

    project, root, patches, store = with_inbox(tmp_path, capsys, fixed=True)
    data = project.make_patch({"calc.py": FIXED_NEG})
    # As an older errauto took it: the submission and the file, no record of the file.
    sub = intake.submit(store, root, data, source="inbox", name="old.patch").submission
    (patches / "queued" / f"{sub.id}-old.patch").write_bytes(data)
    assert store.inbox_files(sub.id) == []

    code, out, _ = run(capsys, "queue", "process")
    assert code == 0 and out.startswith(f"#{sub.id} merged")
    assert files_in(patches / "merged") == [f"{sub.id}-old.patch"]
    assert files_in(patches / "queued") == []


# -- B: safety rails ----------------------------------------------------------------


def test_approve_of_a_gate_hit_needs_force_and_is_recorded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = python_project(tmp_path / "project")
    patch = patch_file(tmp_path, project, "breaks-mul.patch", TESTS_FAIL)
    code, out, _ = run(capsys, "apply", str(patch), "--repo", str(project.path), "--json")
    held = json.loads(out)
    assert code == 1 and held["state"] == "awaiting_review"
    tip = project.head()

    code, out, err = run(capsys, "queue", "approve", str(held["id"]))
    assert code == 2
    assert err.count("\n") == 1 and "held because: tests must pass to auto-merge" in err
    assert "--force" in err
    assert project.head() == tip
    assert Store().get(held["id"]).state == "awaiting_review"

    code, out, err = run(capsys, "queue", "approve", str(held["id"]), "--force", "--json")
    assert code == 0, err
    assert json.loads(out)["state"] == "merged"
    assert "a * b + 1" in project.read("calc.py")
    details = [e["detail"] or "" for e in Store().events(held["id"])]
    assert any(d.startswith("approved by ") and "with --force (gates: tests must pass" in d for d in details)


def test_approve_of_a_protected_path_needs_force_but_a_low_confidence_does_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = python_project(tmp_path / "project")
    project.commit("fix add", {"calc.py": FIXED})
    protected = tmp_path / "protected.patch"
    protected.write_bytes(project.make_patch({"pyproject.toml": "[project]\nname = 'calc'\n"}))
    code, out, _ = run(capsys, "apply", str(protected), "--repo", str(project.path), "--json")
    first = json.loads(out)
    assert code == 1 and first["state"] == "awaiting_review"
    code, _, err = run(capsys, "queue", "approve", str(first["id"]))
    assert code == 2 and "held because: touches protected paths (pyproject.toml)" in err

    style = patch_file(tmp_path, project, "style.patch", FIXED_LONG_NEG)  # lint fails: only a low score
    code, out, _ = run(capsys, "apply", str(style), "--repo", str(project.path), "--json")
    second = json.loads(out)
    assert code == 1 and second["state"] == "awaiting_review"
    assert run(capsys, "queue", "approve", str(second["id"]))[0] == 0


def test_retry_of_a_persons_rejection_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = python_project(tmp_path / "project")
    patch = patch_file(tmp_path, project, "fix.patch", LINT_FAILS)
    _, out, _ = run(capsys, "apply", str(patch), "--repo", str(project.path), "--json")
    sub = str(json.loads(out)["id"])
    assert run(capsys, "queue", "reject", sub, "--reason", "wrong approach")[0] == 0

    code, _, err = run(capsys, "queue", "retry", sub)
    assert code == 2 and "rejected by a person" in err and "--force" in err
    assert Store().get(int(sub)).state == "rejected"

    code, out, err = run(capsys, "queue", "retry", sub, "--force")
    assert code == 1, err  # validated again: held for review as before
    details = [e["detail"] or "" for e in Store().events(int(sub))]
    assert any("with --force (it was rejected: rejected by" in d and "wrong approach" in d for d in details)


def test_retry_of_errautos_own_rejection_needs_no_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = python_project(tmp_path / "project")
    patch = tmp_path / "late.patch"
    patch.write_bytes(DOES_NOT_APPLY)
    code, out, _ = run(capsys, "apply", str(patch), "--repo", str(project.path), "--json")
    assert code == 4
    assert run(capsys, "queue", "retry", str(json.loads(out)["id"]))[0] == 4  # still does not apply


def test_submit_wait_without_a_daemon_says_so_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = python_project(tmp_path / "project")
    patch = patch_file(tmp_path, project, "fix.patch", FIXED)
    proc = cli("submit", str(patch), "--repo", str(project.path), "--wait", timeout=60)
    assert proc.returncode == 6, proc.stderr
    assert proc.stdout.startswith("#1 queued")
    assert "no daemon is running" in proc.stderr and "errauto daemon start" in proc.stderr
    assert "errauto queue process" in proc.stderr
    # It stays queued: `queue process` decides it.
    assert Store().get(1).state == "queued"


@pytest.mark.slow
def test_submit_wait_timeout_and_a_daemon_that_stops(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemons: list[DaemonProcess]) -> None:
    slow = 'target = "main"\n[checks.tests]\ncommand = ["sleep", "60"]\n'
    project = registered(tmp_path, capsys, config=slow)
    daemon = start(daemons, tmp_path, grace=0.5)
    first = patch_file(tmp_path, project, "one.patch", FIXED)
    proc = cli("submit", str(first), "--repo", str(project.path), "--wait", "--timeout", "1")
    assert proc.returncode == 7, proc.stderr
    assert "not decided within 1s: #1" in proc.stderr

    second = patch_file(tmp_path, project, "two.patch", LINT_FAILS)
    waiting = subprocess.Popen([PYTHON, "-m", "errauto_daemon", "submit", str(second), "--repo",
                                str(project.path), "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=os.environ.copy())
    try:
        store = Store()
        wait_until(lambda: store.get(2).state == "validating" if len(store.submissions()) == 2 else False,
                   what="the second submission being validated")
        daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        _, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 6, err
    assert "the daemon stopped before deciding #2" in err


def test_submit_without_wait_reports_a_patch_rejected_at_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = python_project(tmp_path / "project")
    good = patch_file(tmp_path, project, "good.patch", FIXED)
    garbage = tmp_path / "garbage.patch"
    garbage.write_bytes(b"this is not a patch\n")
    code, out, _ = run(capsys, "submit", str(good), str(garbage), "--repo", str(project.path))
    assert code == 4
    assert "#1 queued" in out and "#2 rejected" in out
    assert "reason: no diff found" in out
    assert run(capsys, "submit", str(good), "--repo", str(project.path))[0] == 0


@pytest.mark.sqlite_only("the database file lives in the state directory")
@pytest.mark.parametrize("args", [["status"], ["queue", "list"], ["submit", "x.patch"], ["daemon", "status"]])
def test_an_unusable_state_directory_is_one_line_and_exit_5(tmp_path: Path, args: list[str]) -> None:
    proc = cli(*args, env={**os.environ, "ERRAUTO_HOME": "/dev/null/x"}, timeout=60)
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr == "errauto: cannot use the state directory /dev/null/x: Not a directory\n"


@pytest.mark.sqlite_only("a broken database file")
@pytest.mark.parametrize("broken", ["a directory", "not a database"])
def test_a_state_database_that_cannot_be_opened_is_one_line_and_exit_5(state_dir: Path, broken: str) -> None:
    state_dir.mkdir(parents=True)
    if broken == "a directory":
        (state_dir / "errauto.db").mkdir()
    else:
        (state_dir / "errauto.db").write_bytes(b"these are not the bytes of a database\n" * 100)
    proc = cli("queue", "list", timeout=60)
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.startswith(f"errauto: cannot use the state database {state_dir / 'errauto.db'}: ")
    assert proc.stderr.count("\n") == 1


# -- C: queue process -----------------------------------------------------------------


def test_queue_process_decides_everything_queued_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = python_project(tmp_path / "project")
    late = tmp_path / "late.patch"
    late.write_bytes(DOES_NOT_APPLY)
    patches = [patch_file(tmp_path, project, "fix.patch", FIXED),
               patch_file(tmp_path, project, "style.patch", LONG_NEG), late]
    code, out, _ = run(capsys, "submit", *map(str, patches), "--repo", str(project.path))
    assert code == 0 and out.count("queued") == 3

    code, out, err = run(capsys, "queue", "process")
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert lines[0].startswith("#1 merged into main")
    assert lines[1].startswith("#2 held for review")
    assert lines[2].startswith("#3 rejected") and "does not apply" in lines[2]
    assert code == 4  # the worst: rejected
    assert "a + b" in project.read("calc.py")

    assert run(capsys, "queue", "process") == (0, "", "")  # nothing queued: nothing to say


def test_queue_process_repo_and_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = python_project(tmp_path / "one")
    two = python_project(tmp_path / "two")
    for project in (one, two):
        patch = patch_file(tmp_path, project, f"{project.path.name}.patch", FIXED)
        assert run(capsys, "submit", str(patch), "--repo", str(project.path))[0] == 0
    extra = patch_file(tmp_path, one, "neg.patch", NEG)
    assert run(capsys, "submit", str(extra), "--repo", str(one.path))[0] == 0

    code, out, _ = run(capsys, "queue", "process", "--repo", str(one.path), "--limit", "1", "--json")
    assert code == 0
    assert [(d["id"], d["state"]) for d in json.loads(out)] == [(1, "merged")]
    store = Store()
    assert [store.get(i).state for i in (2, 3)] == ["queued", "queued"]

    code, out, _ = run(capsys, "queue", "process", "--repo", str(two.path))
    assert code == 0 and out.startswith("#2 merged")
    assert store.get(3).state == "queued"


def test_queue_process_skips_what_another_process_holds_and_settles_inbox_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project, root, patches, store = with_inbox(tmp_path, capsys)
    first = inbox.take(store, root, drop(patches, "fix.patch", project.make_patch({"calc.py": FIXED})))
    second = inbox.take(store, root, drop(patches, "style.patch", project.make_patch({"calc.py": LINT_FAILS})))
    assert first is not None and second is not None

    with store.hold(first.id) as held:  # as a daemon's worker holds what it validates
        assert held
        proc = cli("queue", "process")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith(f"#{second.id} held for review") and proc.stdout.count("\n") == 1
    assert f"#{first.id} skipped: another process is validating it" in proc.stderr
    assert store.get(first.id).state == "queued"
    assert files_in(patches / "review") == [f"{second.id}-style.patch"]
    assert files_in(patches / "queued") == [f"{first.id}-fix.patch"]

    code, out, _ = run(capsys, "queue", "process")
    assert code == 0 and out.startswith(f"#{first.id} merged")
    assert files_in(patches / "merged") == [f"{first.id}-fix.patch"]


def test_queue_process_recovers_a_submission_a_killed_run_left_validating(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = python_project(tmp_path / "project")
    patch = patch_file(tmp_path, project, "fix.patch", FIXED)
    assert run(capsys, "submit", str(patch), "--repo", str(project.path))[0] == 0
    store = Store()
    assert store.claim(1) is not None  # claimed, then its process died (no hold is held)

    code, out, _ = run(capsys, "queue", "process")
    assert code == 0 and out.startswith("#1 merged")
