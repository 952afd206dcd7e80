"""Resubmission, the validation cache, and recovery from a process that died."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from errauto_daemon import intake
from errauto_daemon.git import GitError
from errauto_daemon.main import main
from errauto_daemon.store import Store
from errauto_daemon.validate import Validator
from tests.helpers.gitrepo import CALC, PYTHON, GitRepo, config_toml, git, python_project

FIXED = CALC.replace("a - b", "a + b")


# The counting check counts its runs in a file outside the worktree, which a
# sandboxed check cannot write: its configurations run checks unsandboxed.
UNSANDBOXED = 'sandbox = "off"'


def counting_check(counter: Path, *, sleep: float = 0.0) -> str:
    script = (f"import pathlib, time; p = pathlib.Path({str(counter)!r}); "
              f"p.write_text(str(int(p.read_text()) + 1) if p.exists() else '1'); time.sleep({sleep})")
    return f'[checks.counted]\ncommand = ["{PYTHON}", "-c", "{script}"]\nweight = 0.1\n'


def test_patch_errauto_turned_down_is_validated_again_when_sent_again(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Made against a version of calc.py the target does not have yet.
    project.git("checkout", "-q", "-b", "next")
    project.commit("rename neg", {"calc.py": CALC.replace("def neg(a):", "def negate(a):")})
    patch = tmp_path / "p.patch"
    patch.write_bytes(project.make_patch({"calc.py": FIXED.replace("def neg(a):\n    return -a",
                                                                   "def negate(a):\n    return 0 - a")}))
    project.git("checkout", "-q", "main")

    assert main(["apply", str(patch), "--repo", str(project.path)]) == 4
    assert "does not apply" in capsys.readouterr().out

    project.git("merge", "-q", "--ff-only", "next")
    assert main(["apply", str(patch), "--repo", str(project.path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["id"] == 1 and result["state"] == "merged"


def test_a_persons_rejection_stands_when_the_patch_is_sent_again(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patch = tmp_path / "p.patch"
    patch.write_bytes(project.make_patch({"calc.py": FIXED + "#" * 90 + "\n"}))
    assert main(["apply", str(patch), "--repo", str(project.path)]) == 1
    assert main(["queue", "reject", "1", "--reason", "no"]) == 0
    capsys.readouterr()
    assert main(["apply", str(patch), "--repo", str(project.path), "--json"]) == 4
    assert json.loads(capsys.readouterr().out)["state"] == "rejected"


def test_identical_validation_is_answered_from_the_cache(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    first = python_project(tmp_path / "one", config=config_toml(top=UNSANDBOXED, extra=counting_check(counter)))
    second = tmp_path / "two"
    git(tmp_path, "clone", "-q", str(first.path), str(second))  # same trees, another repository
    data = first.make_patch({"calc.py": FIXED + "#" * 90 + "\n"})  # lint fails: held, not merged
    store = Store()

    a = Validator(store).process(intake.submit(store, first.path, data, source="cli", name="p").submission.id)
    assert a.state == "awaiting_review" and counter.read_text() == "1"
    b = Validator(store).process(intake.submit(store, second, data, source="cli", name="p").submission.id)
    assert b.state == "awaiting_review" and b.id != a.id
    assert counter.read_text() == "1"  # no check ran again
    assert b.confidence == a.confidence
    assert b.explanation is not None and any("reused" in n for n in b.explanation["notes"])

    # `queue retry` means "run it again": it bypasses the cache.
    assert main(["queue", "retry", str(b.id)]) == 1
    assert counter.read_text() == "2"


def test_a_cached_validation_is_not_reused_once_the_evidence_rules_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The cache keeps the evidence with the results: an errauto whose rules for
    # finding weakened tests (or any other evidence) changed must judge again.
    counter = tmp_path / "runs"
    first = python_project(tmp_path / "one", config=config_toml(top=UNSANDBOXED, extra=counting_check(counter)))
    second, third = tmp_path / "two", tmp_path / "three"
    git(tmp_path, "clone", "-q", str(first.path), str(second))
    git(tmp_path, "clone", "-q", str(first.path), str(third))
    data = first.make_patch({"calc.py": FIXED + "#" * 90 + "\n"})
    store = Store()
    Validator(store).process(intake.submit(store, first.path, data, source="cli", name="p").submission.id)
    Validator(store).process(intake.submit(store, second, data, source="cli", name="p").submission.id)
    assert counter.read_text() == "1"

    monkeypatch.setattr("errauto_daemon.validate.evidence_rules", lambda: "rules-of-a-later-version")
    c = Validator(store).process(intake.submit(store, third, data, source="cli", name="p").submission.id)
    assert counter.read_text() == "2"  # the checks ran again, and the evidence was found again
    assert c.explanation is not None and not any("reused" in n for n in c.explanation["notes"])


def test_submission_abandoned_by_a_killed_process_is_requeued_and_decided_once(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    project = python_project(tmp_path / "p", config=config_toml(top=UNSANDBOXED, extra=counting_check(counter, sleep=30)))
    patch = tmp_path / "p.patch"
    patch.write_bytes(project.make_patch({"calc.py": FIXED}))
    proc = subprocess.Popen([PYTHON, "-m", "errauto_daemon", "apply", str(patch), "--repo", str(project.path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while not counter.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counter.exists(), "the check never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    store = Store()
    assert store.get(1).state == "validating"
    validator = Validator(store)
    [recovered] = validator.recover()
    assert recovered.state == "queued"
    assert validator.recover() == []  # nothing left to recover

    # Let the check finish quickly now (the committed config is what counts).
    project.commit("faster check", {".errauto.toml": config_toml(top=UNSANDBOXED, extra=counting_check(counter))})
    decided = validator.process(1)
    assert decided.state == "merged"
    states = [e["to_state"] for e in store.events(1) if e["to_state"]]
    assert states == ["queued", "validating", "queued", "validating", "merged"]


def test_merge_that_reached_the_target_before_a_crash_is_recorded_not_redone(
        project: GitRepo, tmp_path: Path) -> None:
    store = Store()
    data = project.make_patch({"calc.py": FIXED})
    sub = intake.submit(store, project.path, data, source="cli", name="p").submission
    # The state a crash between the ref move and the decision leaves behind:
    # claimed, merge intent recorded, and the commit on the target.
    assert store.claim(sub.id) is not None
    project.commit("the merge errauto made", {"calc.py": FIXED})
    store.set_fields(sub.id, merge_intent=project.head())
    before = project.head()

    [recovered] = Validator(store).recover()

    assert recovered.state == "merged"
    assert recovered.merged_commit == before
    assert project.head("main") == before
    assert "recorded after a restart" in (recovered.reason or "")


def test_repeatedly_interrupted_submission_fails_with_the_reason(project: GitRepo) -> None:
    store = Store()
    sub = intake.submit(store, project.path, project.make_patch({"calc.py": FIXED}),
                        source="cli", name="p").submission
    for _ in range(3):
        assert store.claim(sub.id) is not None
        [again] = Validator(store).recover(max_attempts=3)
    assert again.state == "failed"
    assert "interrupted 3 times" in (again.reason or "")


def test_a_failing_git_command_is_retried_not_blamed_on_the_user(
        project: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store()
    sub = intake.submit(store, project.path, project.make_patch({"calc.py": FIXED}),
                        source="cli", name="p").submission
    # A real git failure: every git command stops at a broken global config
    # (pygit2 does not read it); the first one is the merge's `git worktree list`.
    broken = tmp_path / "broken.gitconfig"
    broken.write_text("[core\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(broken))
    validator = Validator(store, retry_internal=3)  # as the daemon's workers

    with pytest.raises(GitError, match="git worktree failed"):
        validator.process(sub.id)

    assert store.get(sub.id).state == "queued"
    assert store.events(sub.id)[-1]["detail"] == "internal error: GitError; will try again"
    monkeypatch.delenv("GIT_CONFIG_GLOBAL")
    assert validator.process(sub.id).state == "merged"
