"""Auto-merge: compare-and-swap, revalidation, checked-out targets, push."""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from errauto_daemon.main import main
from tests.helpers.gitrepo import CALC, PYTHON, GitRepo, config_toml, git, python_project

FIX = {"calc.py": CALC.replace("a - b", "a + b")}


def apply(capsys: pytest.CaptureFixture[str], patch: Path, repo: GitRepo, *extra: str) -> tuple[int, dict]:
    code = main(["apply", str(patch), "--repo", str(repo.path), "--json", *extra])
    out, err = capsys.readouterr()
    assert out, f"exit {code}, no output; stderr: {err}"
    return code, json.loads(out)


def write_patch(tmp_path: Path, repo: GitRepo, edits: Mapping[str, str | None], name: str = "fix.patch") -> Path:
    path = tmp_path / name
    path.write_bytes(repo.make_patch(edits))
    return path


MOVER_TOP = 'sandbox = "off"\n'


def mover_check(user_repo: Path, marker_dir: Path, times: int, edit: str = "NOTES") -> str:
    """A check that commits to the user's target branch the first `times` runs.

    It runs while errauto validates, after the base was chosen: exactly the
    race where the target moves between validation and merge. It stands in for
    a person committing meanwhile, which a sandboxed check cannot do to the
    user's repository: configurations with it run checks unsandboxed (MOVER_TOP).
    """
    script = marker_dir / "mover.py"
    marker_dir.mkdir(exist_ok=True)
    script.write_text(f'''
import pathlib, subprocess, sys
count = pathlib.Path({str(marker_dir / "count")!r})
n = int(count.read_text()) if count.exists() else 0
count.write_text(str(n + 1))
if n < {times}:
    repo = {str(user_repo)!r}
    path = pathlib.Path(repo) / {edit!r}
    path.write_text(path.read_text() + "line %d\\n" % n if path.exists() else "line %d\\n" % n)
    subprocess.run(["git", "-C", repo, "add", {edit!r}], check=True)
    subprocess.run(["git", "-C", repo, "commit", "-q", "-m", "concurrent %d" % n], check=True)
''')
    return f'[checks.mover]\ncommand = ["{PYTHON}", "{script}"]\nweight = 0\n'


def test_target_moved_during_validation_is_validated_again_on_new_tip(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = python_project(tmp_path / "project", config=config_toml(
        top=MOVER_TOP, extra=mover_check(tmp_path / "project", tmp_path / "mover", times=1)))
    base = repo.head()
    patch = write_patch(tmp_path, repo, FIX)

    code, result = apply(capsys, patch, repo)

    assert code == 0, result
    assert result["state"] == "merged"
    merged = repo.head("main")
    concurrent = repo.head("main^")
    assert repo.git("log", "-1", "--format=%s", concurrent).strip() == "concurrent 0"
    assert repo.head("main^^") == base
    # The merged combination is the one validated last: its base is the moved tip.
    assert result["base_commit"] == concurrent
    assert {c["name"] for c in result["checks"]} == {"tests", "lint", "mover"}
    shown = json.loads((main(["queue", "show", str(result["id"]), "--json"]), capsys.readouterr()[0])[1])
    kinds = [e["kind"] for e in shown["events"]]
    assert "revalidate" in kinds
    assert merged == repo.head()
    assert "a + b" in repo.read("calc.py") and "line 0" in repo.read("NOTES")


def test_target_that_keeps_moving_is_held_after_bounded_revalidations(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = python_project(tmp_path / "project", config=config_toml(
        top=MOVER_TOP + "max_revalidations = 2\n", extra=mover_check(tmp_path / "project", tmp_path / "mover", times=99)))
    patch = write_patch(tmp_path, repo, FIX)

    code, result = apply(capsys, patch, repo)

    assert code == 1
    assert result["state"] == "awaiting_review"
    assert "kept moving" in result["reason"]
    assert (tmp_path / "mover" / "count").read_text() == "3"  # 1 + 2 revalidations
    assert "a - b" in repo.git("show", "main:calc.py")


def test_moved_target_that_now_conflicts_is_rejected(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = python_project(tmp_path / "project", config=config_toml(
        top=MOVER_TOP, extra=mover_check(tmp_path / "project", tmp_path / "mover", times=1, edit="calc.py")))
    patch = write_patch(tmp_path, repo, {"calc.py": FIX["calc.py"].replace("def neg(a):\n    return -a\n",
                                                                        "def neg(a):\n    return 0 - a\n")})

    code, result = apply(capsys, patch, repo)

    assert code == 4
    assert result["state"] == "rejected"
    assert "does not apply" in result["reason"]


def test_checked_out_target_with_local_changes_elsewhere_follows_and_keeps_them(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patch = write_patch(tmp_path, project, FIX)
    project.write("tests/test_calc.py", project.read("tests/test_calc.py") + "# local note\n")
    project.write("scratch.txt", "untracked\n")

    code, result = apply(capsys, patch, project)

    assert code == 0, result
    assert "a + b" in project.read("calc.py")
    assert project.read("tests/test_calc.py").endswith("# local note\n")
    status = project.git("status", "--porcelain").splitlines()
    assert sorted(status) == [" M tests/test_calc.py", "?? scratch.txt"]


def test_checked_out_target_with_local_changes_to_patched_file_is_held(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = project.head()
    patch = write_patch(tmp_path, project, FIX)
    local = project.read("calc.py") + "# my work in progress\n"
    project.write("calc.py", local)

    code, result = apply(capsys, patch, project)

    assert code == 1
    assert result["state"] == "awaiting_review"
    assert "auto-merge held" in result["reason"] and "calc.py" in result["reason"]
    assert project.head("main") == base
    assert project.read("calc.py") == local


def test_staged_change_to_patched_file_is_held(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = project.head()
    patch = write_patch(tmp_path, project, FIX)
    project.write("calc.py", project.read("calc.py") + "# staged\n")
    project.git("add", "calc.py")

    code, result = apply(capsys, patch, project)

    assert code == 1 and "auto-merge held" in result["reason"]
    assert project.head("main") == base
    assert project.git("diff", "--cached", "--name-only").split() == ["calc.py"]


def test_untracked_file_in_the_way_of_a_new_file_is_held(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = project.head()
    patch = write_patch(tmp_path, project, {**FIX, "notes.py": "X = 1\n"})
    project.write("notes.py", "mine\n")

    code, result = apply(capsys, patch, project)

    assert code == 1 and "notes.py" in result["reason"]
    assert project.head("main") == base
    assert project.read("notes.py") == "mine\n"


def test_target_not_checked_out_moves_only_the_ref(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patch = write_patch(tmp_path, project, FIX)
    project.git("checkout", "-q", "-b", "feature")
    project.write("calc.py", "local work on feature\n")

    code, result = apply(capsys, patch, project)

    assert code == 0, result
    assert "a + b" in project.git("show", "main:calc.py")
    assert project.read("calc.py") == "local work on feature\n"
    assert project.git("rev-parse", "--abbrev-ref", "HEAD").strip() == "feature"


def test_target_checked_out_in_a_linked_worktree_follows(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patch = write_patch(tmp_path, project, FIX)
    project.git("checkout", "-q", "-b", "feature")
    linked = tmp_path / "linked"
    project.git("worktree", "add", "-q", str(linked), "main")

    code, result = apply(capsys, patch, project)

    assert code == 0, result
    assert "a + b" in (linked / "calc.py").read_text()
    assert git(linked, "status", "--porcelain") == ""


def test_bare_repository_moves_the_ref(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = python_project(tmp_path / "work")
    patch = write_patch(tmp_path, work, FIX)
    bare = tmp_path / "server.git"
    git(tmp_path, "clone", "-q", "--bare", str(work.path), str(bare))
    before = git(bare, "rev-parse", "main").strip()

    code = main(["apply", str(patch), "--repo", str(bare), "--json"])
    result = json.loads(capsys.readouterr()[0])

    assert code == 0, result
    assert git(bare, "rev-parse", "main^").strip() == before
    assert "a + b" in git(bare, "show", "main:calc.py")


def _with_remote(tmp_path: Path) -> tuple[GitRepo, Path, Path]:
    """A bare remote, errauto's clone of it (`push = "origin"`) and another clone: (repo, local, other)."""
    seed = python_project(tmp_path / "seed", config=config_toml(top='push = "origin"\n'))
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed.path), str(remote))
    local = tmp_path / "local"
    git(tmp_path, "clone", "-q", str(remote), str(local))
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    repo = GitRepo.__new__(GitRepo)  # the clone as it is: no commit of its own
    repo.path = local
    return repo, local, other


def _commit_elsewhere(other: Path, text: str, *, to: str = "main") -> str:
    """Another clone commits `text` to CHANGES and pushes it to the remote's `to`; its commit id."""
    (other / "CHANGES").write_text(text)
    git(other, "add", "CHANGES")
    git(other, "commit", "-q", "-m", text.strip())
    git(other, "push", "-q", "origin", f"main:{to}")
    return git(other, "rev-parse", "HEAD").strip()


def test_push_sends_the_merge_to_the_remote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo, local, _ = _with_remote(tmp_path)
    patch = write_patch(tmp_path, repo, FIX)

    code, result = apply(capsys, patch, repo)

    assert code == 0, result
    remote = tmp_path / "remote.git"
    assert git(remote, "rev-parse", "main").strip() == git(local, "rev-parse", "main").strip()
    assert "a + b" in git(remote, "show", "main:calc.py")


def test_rejected_push_fetches_and_validates_again_on_the_remote_tip(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo, local, other = _with_remote(tmp_path)
    patch = write_patch(tmp_path, repo, FIX)
    remote_tip = _commit_elsewhere(other, "someone else's change\n")

    code, result = apply(capsys, patch, repo)

    assert code == 0, result
    remote = tmp_path / "remote.git"
    assert git(remote, "rev-parse", "main^").strip() == remote_tip
    assert result["base_commit"] == remote_tip
    assert git(local, "rev-parse", "main").strip() == git(remote, "rev-parse", "main").strip()
    assert (local / "CHANGES").exists()


def test_a_push_that_loses_a_race_on_the_remote_validates_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two errauto daemons push to one remote: the other's push lands after ours was accepted for
    checking but before the remote moved its ref ("[remote rejected] ... failed to update ref").
    The remote moved: validate again on its tip, as for a plain rejected push, not a held merge."""
    repo, local, other = _with_remote(tmp_path)
    patch = write_patch(tmp_path, repo, FIX)
    landed = _commit_elsewhere(other, "the other daemon's merge\n", to="refs/heads/landing")
    remote = tmp_path / "remote.git"
    hook = remote / "hooks" / "update"
    hook.write_text('#!/bin/sh\n'
                    '# The first push to main loses the race: the other merge lands while it is checked.\n'
                    'if [ "$1" = refs/heads/main ] && [ ! -e raced ]; then\n'
                    '  touch raced && git update-ref refs/heads/main refs/heads/landing\n'
                    'fi\n')
    hook.chmod(0o755)

    code, result = apply(capsys, patch, repo)

    assert (remote / "raced").exists()  # the race happened
    assert code == 0, result
    assert result["state"] == "merged" and result["base_commit"] == landed
    assert git(remote, "rev-parse", "main^").strip() == landed
    assert "a + b" in git(remote, "show", "main:calc.py")
    assert git(local, "rev-parse", "main").strip() == git(remote, "rev-parse", "main").strip()


def test_a_push_the_remote_refuses_holds_the_merge_with_its_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo, local, _ = _with_remote(tmp_path)
    patch = write_patch(tmp_path, repo, FIX)
    remote = tmp_path / "remote.git"
    before = git(remote, "rev-parse", "main").strip()
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is frozen for the release' >&2\nexit 1\n")
    hook.chmod(0o755)

    code, result = apply(capsys, patch, repo)

    assert code == 1 and result["state"] == "awaiting_review"
    assert "push to origin was refused" in result["reason"] and "pre-receive hook declined" in result["reason"]
    assert git(remote, "rev-parse", "main").strip() == before
    assert git(local, "rev-parse", "main").strip() == before


def test_diverged_remote_holds_the_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo, local, other = _with_remote(tmp_path)
    patch = write_patch(tmp_path, repo, FIX)
    for where, name in ((other, "THEIRS"), (local, "OURS")):
        (where / name).write_text("x\n")
        git(where, "add", name)
        git(where, "commit", "-q", "-m", name)
    git(other, "push", "-q", "origin", "main")
    remote_tip = git(other, "rev-parse", "main").strip()

    code, result = apply(capsys, patch, repo)

    assert code == 1
    assert "diverged" in result["reason"]
    assert git(tmp_path / "remote.git", "rev-parse", "main").strip() == remote_tip


def test_approve_merges_a_held_patch(project: GitRepo, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    patch = write_patch(tmp_path, project, {"calc.py": CALC.replace("a - b", "a + b  " + "#" * 80)})
    code, result = apply(capsys, patch, project)
    assert code == 1 and result["state"] == "awaiting_review"  # lint failed
    held_on = project.head()

    code = main(["queue", "approve", str(result["id"]), "--json"])
    approved = json.loads(capsys.readouterr()[0])

    assert code == 0, approved
    assert approved["state"] == "merged"
    assert "approved by" in approved["reason"]
    assert project.head("main^") == held_on
    assert "a + b" in project.read("calc.py")


def test_approve_after_target_moved_validates_again(project: GitRepo, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    patch = write_patch(tmp_path, project, {"calc.py": CALC.replace("a - b", "a + b  " + "#" * 80)})
    _, result = apply(capsys, patch, project)
    moved = project.commit("unrelated", {"NOTES": "n\n"})

    code = main(["queue", "approve", str(result["id"]), "--json"])
    approved = json.loads(capsys.readouterr()[0])

    assert code == 0, approved
    assert project.head("main^") == moved
    assert approved["base_commit"] == moved
    assert len({c["name"] for c in approved["checks"]}) == 2


def test_approve_refuses_when_new_tip_breaks_what_passed(project: GitRepo, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    patch = write_patch(tmp_path, project, {"calc.py": CALC.replace("a - b", "a + b  " + "#" * 80)})
    _, result = apply(capsys, patch, project)
    # Someone else changes mul() on the target: the tests now fail with the patch.
    project.commit("break mul", {"calc.py": project.read("calc.py").replace("a * b", "a * b + 1")})
    tip = project.head()

    code = main(["queue", "approve", str(result["id"]), "--json"])
    held = json.loads(capsys.readouterr()[0])

    assert code == 1
    assert held["state"] == "awaiting_review"
    assert "tests no longer pass" in held["reason"]
    assert project.head("main") == tip


def test_reject_and_retry(project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patch = write_patch(tmp_path, project, {"calc.py": CALC.replace("a - b", "a + b  " + "#" * 80)})
    _, result = apply(capsys, patch, project)
    sub = str(result["id"])

    assert main(["queue", "reject", sub, "--reason", "style"]) == 0
    capsys.readouterr()
    assert main(["queue", "show", sub, "--json"]) == 0
    shown = json.loads(capsys.readouterr()[0])
    assert shown["state"] == "rejected" and "style" in shown["reason"]

    # Fix the lint rule on the target, then retry: it validates again and merges.
    # A person's rejection stands unless the retry is forced.
    lint = project.read("tools/lint.py").replace("len(line) > 79", "len(line) > 200")
    project.commit("relax lint", {"tools/lint.py": lint})
    assert main(["queue", "retry", sub]) == 2
    assert "rejected by a person" in capsys.readouterr()[1]
    code = main(["queue", "retry", sub, "--force", "--json"])
    retried = json.loads(capsys.readouterr()[0])
    assert code == 0, retried
    assert retried["state"] == "merged"
    assert main(["queue", "reject", sub, "--reason", "too late"]) == 2


def test_touched_but_unchanged_file_does_not_hold_the_merge(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    patch = write_patch(tmp_path, project, FIX)
    calc = project.path / "calc.py"
    calc.write_text(calc.read_text())  # same bytes, new stat data
    os.utime(calc, (1, 1))

    code, result = apply(capsys, patch, project)

    assert code == 0, result
    assert "a + b" in project.read("calc.py")
    assert project.git("status", "--porcelain") == ""


def test_a_merge_killed_while_moving_the_checkout_is_repaired(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The state a SIGKILL inside `git read-tree -m -u` leaves, rebuilt by hand."""
    import json as json_mod
    import time as time_mod

    from errauto_daemon import merge as merge_mod
    from errauto_daemon.repo import open_repo

    old = project.head()
    patch = write_patch(tmp_path, project, FIX)
    # The merge in flight changed calc.py and added a file; it was killed after
    # writing the files, before writing the index or moving the ref.
    project.commit("the merge in flight", {"calc.py": CALC.replace("a * b", "b * a"), "added.py": "X = 1\n"})
    new = project.head()
    project.git("reset", "-q", "--mixed", old)  # ref and index at old, files at new
    project.write("mine.txt", "a local file the merge never touched\n")
    journal = merge_mod._journal(open_repo(project.path), "refs/heads/main")
    journal.write_text(json_mod.dumps({"old": old, "new": new, "worktrees": [str(project.path)],
                                       "started": time_mod.time() - 5}))
    (project.path / ".git" / "index.lock").write_text("stale")

    code, result = apply(capsys, patch, project)

    assert code == 0, result
    assert not journal.exists()
    assert not (project.path / ".git" / "index.lock").exists()
    assert not (project.path / "added.py").exists()
    assert project.read("calc.py") == FIX["calc.py"]  # put back, then merged
    assert project.read("mine.txt").startswith("a local file")
    assert project.git("status", "--porcelain").splitlines() == ["?? mine.txt"]
    assert project.head("main^") == old


def test_a_merge_killed_while_moving_the_ref_is_repaired(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The state a SIGKILL inside `git update-ref` leaves: the checkout moved,
    the ref not, and git's locks on the ref and on HEAD still there."""
    import json as json_mod
    import time as time_mod

    from errauto_daemon import merge as merge_mod
    from errauto_daemon.repo import open_repo

    old = project.head()
    patch = write_patch(tmp_path, project, FIX)
    project.commit("the merge in flight", {"added.py": "X = 1\n"})
    new = project.head()
    project.git("update-ref", "refs/heads/main", old)  # index and files at new, the ref at old
    journal = merge_mod._journal(open_repo(project.path), "refs/heads/main")
    journal.write_text(json_mod.dumps({"old": old, "new": new, "worktrees": [str(project.path)],
                                       "started": time_mod.time() - 5}))
    for lock in ("HEAD.lock", "refs/heads/main.lock"):
        (project.path / ".git" / lock).write_text(new + "\n")

    code, result = apply(capsys, patch, project)

    assert code == 0, result
    assert not (project.path / ".git" / "HEAD.lock").exists()
    assert not (project.path / ".git" / "refs" / "heads" / "main.lock").exists()
    assert not (project.path / "added.py").exists()
    assert project.head("main^") == old
    project.commit("the user's own commit still works", {"mine.txt": "x\n"})


def test_a_lock_the_user_holds_is_not_taken_for_a_moving_target(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A HEAD.lock that is not errauto's (no merge of errauto's was in flight):
    # left alone, and the merge is held saying why, not validated again and
    # again as if main kept moving.
    old = project.head()
    patch = write_patch(tmp_path, project, FIX)
    lock = project.path / ".git" / "HEAD.lock"
    lock.write_text("someone else's\n")

    code, result = apply(capsys, patch, project)

    assert code == 1, result
    assert "HEAD.lock" in result["reason"] and "kept moving" not in result["reason"]
    assert lock.read_text() == "someone else's\n"
    assert project.head("main") == old
