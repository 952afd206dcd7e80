"""Pushing to refs/for/main as Gerrit users do: no --force, the pushed commits land as they are."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from errauto_daemon import patchfile, refwatch
from errauto_daemon.main import main
from errauto_daemon.store import Store, Submission
from errauto_daemon.validate import Validator
from tests.helpers.gitrepo import CALC, git, python_project

FIXED = CALC.replace("a - b", "a + b")




def commit(clone: Path, message: str, files: dict[str, str]) -> str:
    for name, content in files.items():
        path = clone / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", message)
    return git(clone, "rev-parse", "HEAD").strip()


def push(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    done = subprocess.run(("git", "push", "origin", *args), cwd=clone, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done


def decide(sub_id: int) -> Submission:
    return Validator(Store()).process(sub_id)


def tip(bare: Path, ref: str = "main") -> str:
    return git(bare, "rev-parse", ref).strip()


def exists(bare: Path, ref: str) -> bool:
    return git(bare, "rev-parse", "-q", "--verify", ref, check=False).strip() != ""


@pytest.mark.slow
def test_pushes_to_refs_for_main_land_as_the_pushed_commits_and_never_need_force(
        server: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare, dev = server

    c1 = commit(dev, "Fix add()", {"calc.py": FIXED})
    pushed = push(dev, "HEAD:refs/for/main")
    assert "remote: errauto: queued 1 (Fix add())" in pushed.stderr
    assert not exists(bare, "refs/for/main")  # the submit ref is not left behind
    assert tip(bare, "refs/errauto/submissions/1") == c1  # ... but the commit is kept
    first = decide(1)
    assert first.state == "merged", first.reason
    assert tip(bare) == first.merged_commit == c1  # that exact commit: no rewrite
    assert "Errauto-Submission" not in git(bare, "log", "-1", "--format=%B", "main")
    assert git(bare, "notes", "--ref=errauto", "show", "main").strip() == "Errauto-Submission: 1"

    # Stacked on the first, pushed without --force.
    c2 = commit(dev, "Add NOTES", {"NOTES": "add() adds now\n"})
    push(dev, "HEAD:refs/for/main")
    second = decide(2)
    assert second.state == "merged", second.reason
    assert tip(bare) == c2

    # Someone else moves main; the next push must be rewritten onto it.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    moved = commit(other, "Unrelated", {"README": "hello\n"})
    push(other, "HEAD:main")
    c3 = commit(dev, "More notes", {"NOTES": "add() adds now\nmul() multiplies\n"})
    push(dev, "HEAD:refs/for/main")
    third = decide(3)
    assert third.state == "merged", third.reason
    rewritten = tip(bare)
    assert rewritten == third.merged_commit != c3
    assert git(bare, "rev-parse", "main^").strip() == moved
    assert f"replaces {c3} with {rewritten}" in (third.reason or "")
    assert main(["queue", "show", "3"]) == 0
    assert f"replaces {c3} with {rewritten}" in capsys.readouterr().out

    # git pull --rebase drops the pusher's commit: its rewrite has the same patch id.
    git(dev, "pull", "-q", "--rebase")
    assert git(dev, "rev-parse", "HEAD").strip() == rewritten
    c4 = commit(dev, "Notes on neg()", {"NOTES": "add() adds now\nmul() multiplies\nneg() negates\n"})
    pushed = push(dev, "HEAD:refs/for/main")
    assert f"remote: errauto: {c3} was merged as {rewritten}" in pushed.stderr
    assert "does not apply" not in pushed.stderr
    fourth = decide(4)
    assert fourth.state == "merged", fourth.reason
    assert tip(bare) == c4
    # Told once.
    c5 = commit(dev, "Notes end", {"NOTES": "add() adds now\nmul() multiplies\nneg() negates\n.\n"})
    pushed = push(dev, "HEAD:refs/for/main")
    assert "was merged as" not in pushed.stderr
    assert decide(5).state == "merged" and tip(bare) == c5


@pytest.mark.slow
def test_a_pushed_stack_is_one_series_merged_as_those_commits(server: tuple[Path, Path]) -> None:
    bare, dev = server
    d1 = commit(dev, "Fix add()", {"calc.py": FIXED})
    d2 = commit(dev, "Add NOTES", {"NOTES": "add() adds now\n"})

    pushed = push(dev, "HEAD:refs/for/main")

    assert "queued 1 (Fix add() (+1 more commits))" in pushed.stderr
    [sub] = Store().submissions()
    patch = patchfile.parse(Store().read_patch(sub.patch_sha256))
    assert [(c.title, c.commit_id) for c in patch.commits] == [("Fix add()", d1), ("Add NOTES", d2)]
    merged = decide(sub.id)
    assert merged.state == "merged", merged.reason
    assert (tip(bare), tip(bare, "main~1")) == (d2, d1)


def test_the_ref_watch_retires_refs_for_and_does_not_submit_them_again(server: tuple[Path, Path]) -> None:
    bare, dev = server
    (bare / "hooks" / "post-receive").unlink()  # the daemon's ref watch, not the hook
    pushed = commit(dev, "Fix add()", {"calc.py": FIXED})
    push(dev, "HEAD:refs/for/main")
    store = Store()

    [sub] = refwatch.scan(store, str(bare))

    assert not exists(bare, "refs/for/main")
    assert tip(bare, f"refs/errauto/submissions/{sub.id}") == pushed
    assert refwatch.scan(store, str(bare)) == []
    assert len(store.submissions()) == 1
    # The same ref pushed again (no --force needed) with something new is a new submission.
    commit(dev, "Add NOTES", {"NOTES": "x\n"})
    push(dev, "HEAD:refs/for/main")
    assert [s.title for s in refwatch.scan(store, str(bare))] == ["Fix add() (+1 more commits)"]


def test_a_merge_commit_in_the_push_makes_one_squashed_mail(server: tuple[Path, Path]) -> None:
    bare, dev = server
    git(dev, "checkout", "-q", "-b", "side")
    commit(dev, "Add NOTES", {"NOTES": "x\n"})
    git(dev, "checkout", "-q", "main")
    commit(dev, "Fix add()", {"calc.py": FIXED})
    git(dev, "merge", "-q", "--no-edit", "side")

    push(dev, "HEAD:refs/for/main")

    [sub] = Store().submissions()
    patch = patchfile.parse(Store().read_patch(sub.patch_sha256))
    assert len(patch.commits) == 1
    assert sorted((f.new_path for f in patch.commits[0].files), key=str) == ["NOTES", "calc.py"]
    assert not exists(bare, "refs/for/main")


@pytest.mark.slow
def test_a_push_stacked_on_a_rewritten_commit_carries_only_what_is_new(
        server: tuple[Path, Path], tmp_path: Path) -> None:
    bare, dev = server
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    commit(other, "Unrelated", {"README": "hello\n"})
    push(other, "HEAD:main")
    c1 = commit(dev, "Fix add()", {"calc.py": FIXED})
    push(dev, "HEAD:refs/for/main")
    assert decide(1).state == "merged"
    rewritten = tip(bare)
    assert rewritten != c1

    # The pusher stacks on their own commit without pulling first.
    c2 = commit(dev, "Add NOTES", {"NOTES": "add() adds now\n"})
    pushed = push(dev, "HEAD:refs/for/main")

    assert f"remote: errauto: {c1} was merged as {rewritten}" in pushed.stderr
    sub = Store().get(2)
    assert [c.commit_id for c in patchfile.parse(Store().read_patch(sub.patch_sha256)).commits] == [c2]
    merged = decide(2)
    assert merged.state == "merged", merged.reason
    assert git(bare, "rev-parse", "main^").strip() == rewritten
    assert f"replaces {c2} with {tip(bare)}" in (merged.reason or "")


@pytest.mark.slow
def test_fast_forward_into_a_watched_checkout_moves_its_files_and_pushes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers.gitrepo import config_toml

    seed = python_project(tmp_path / "seed", config=config_toml(top='push = "origin"\n'))
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed.path), str(remote))
    local = tmp_path / "local"  # main checked out; errauto watches it, and pushes merges to origin
    git(tmp_path, "clone", "-q", str(remote), str(local))
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(local), str(dev))
    pushed = commit(dev, "Fix add()", {"calc.py": FIXED})
    push(dev, "HEAD:refs/for/main")
    store = Store()

    [sub] = refwatch.scan(store, str(local))
    merged = Validator(store).process(sub.id)

    assert merged.state == "merged", merged.reason
    assert tip(local) == tip(remote) == pushed
    assert (local / "calc.py").read_text() == FIXED
    assert git(local, "status", "--porcelain") == ""
    assert not exists(local, "refs/for/main")


@pytest.mark.slow
def test_queue_approve_lands_the_pushed_commit_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers.gitrepo import config_toml

    seed = python_project(tmp_path / "seed", config=config_toml(top='protected_paths = ["calc.py"]\n'))
    bare = tmp_path / "server.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed.path), str(bare))
    assert main(["hooks", "install", "--repo", str(bare), "--server"]) == 0
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(bare), str(dev))
    pushed = commit(dev, "Fix add()", {"calc.py": FIXED})
    push(dev, "HEAD:refs/for/main")
    assert decide(1).state == "awaiting_review"
    capsys.readouterr()

    # Held by the protected-path gate: approving it takes --force.
    assert main(["queue", "approve", "1", "--force"]) == 0

    assert Store().get(1).merged_commit == tip(bare) == pushed
    assert git(bare, "notes", "--ref=errauto", "show", "main").strip() == "Errauto-Submission: 1"


def test_a_mail_naming_a_commit_lands_it_only_if_its_tree_is_what_was_validated(
        tmp_path: Path) -> None:
    from errauto_daemon import intake

    project = python_project(tmp_path / "project")
    project.git("checkout", "-q", "-b", "topic")
    named = project.commit("Fix add()", {"calc.py": FIXED})
    project.git("checkout", "-q", "main")
    honest = project.git("format-patch", "--stdout", "-1", named).encode()
    # Same `From <id>` line, another change: the claim does not hold.
    forged = honest.replace(b"+    return a + b", b"+    return b + a")
    assert forged != honest
    store = Store()

    first = intake.submit(store, project.path, forged, source="cli", name="forged.patch").submission
    merged = Validator(store).process(first.id)
    assert merged.state == "merged", merged.reason
    assert project.head("main") != named and "b + a" in project.read("calc.py")

    project.git("reset", "-q", "--hard", "main~1")
    second = intake.submit(store, project.path, honest, source="cli", name="honest.patch").submission
    merged = Validator(store).process(second.id)
    assert merged.state == "merged", merged.reason
    assert project.head("main") == named


def test_the_mbox_separator_names_the_commit_only_when_it_is_a_commit_id() -> None:
    diff = b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    sha = "0123456789abcdef0123456789abcdef01234567"
    named = patchfile.as_mail(sha, "A", "a@example.com", "Mon, 2 Feb 2026 00:00:00 +0000", "Title", diff)
    anonymous = named.replace(sha.encode(), b"nobody", 1)

    assert [c.commit_id for c in patchfile.parse(named + b"\n" + named.replace(b"Title", b"Two")).commits] \
        == [sha, sha]
    assert patchfile.parse(anonymous).commits[0].commit_id is None
    assert patchfile.parse(diff).commits[0].commit_id is None


def test_scanning_a_directory_that_is_no_repository_is_the_users_problem(tmp_path: Path) -> None:
    from errauto_daemon.errors import FatalError

    store = Store()
    with pytest.raises(FatalError, match="not a git repository"):
        refwatch.scan(store, str(tmp_path))  # the daemon logs a warning, not an internal error
    store.close()
