"""Pooled worktrees: isolated from the user's checkout, reset by diff, cleaned."""
from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pygit2
import pytest

from errauto_daemon.main import main
from errauto_daemon.patchapply import Overlay
from errauto_daemon.workspace import Pool, Slot
from tests.helpers.gitrepo import CALC, PYTHON, ROOT, GitRepo, config_toml, python_project
from tests.helpers.snapshot import snapshot, snapshot_diff


def tip(repo: GitRepo) -> pygit2.Commit:
    r = repo.pygit2()
    return r.references["refs/heads/main"].peel(pygit2.Commit)


def test_validation_never_touches_the_users_checkout_index_or_head(
        project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Held for review (tests fail), so errauto has no reason to touch the checkout.
    patch = tmp_path / "p.patch"
    patch.write_bytes(project.make_patch({"calc.py": CALC.replace("a * b", "a * b + 1")}))
    project.write("calc.py", project.read("calc.py") + "# local edit\n")
    project.write("untracked.txt", "mine\n")
    kept = tuple(project.path / ".git" / name for name in ("objects", "logs", "worktrees"))
    before = snapshot(project.path, skip=kept)
    refs_before = project.git("show-ref")

    assert main(["apply", str(patch), "--repo", str(project.path)]) == 1
    capsys.readouterr()

    # .git's own mtime moves as the pool's worktrees folder appears in it.
    assert snapshot_diff(before, snapshot(project.path, skip=kept), mtime_may_change=(".git",)) == []
    assert project.git("show-ref") == refs_before


def test_slot_is_reused_and_moved_by_diff_only(project: GitRepo) -> None:
    repo = project.pygit2()
    pool = Pool(repo, size=1)
    with pool.acquire(tip(project)) as slot:
        first_path = slot.path
        untouched = slot.path / "tests" / "test_calc.py"
        stamp = untouched.stat().st_mtime_ns
        inode = untouched.stat().st_ino
    time.sleep(0.01)
    project.commit("change calc", {"calc.py": CALC.replace("a - b", "a + b")})
    with pool.acquire(tip(project)) as slot:
        assert slot.path == first_path
        assert "a + b" in (slot.path / "calc.py").read_text()
        assert untouched.stat().st_mtime_ns == stamp and untouched.stat().st_ino == inode
        assert str(slot.repo.head.target) == project.head()
    # The slot is a repository of its own, detached, borrowing the user's
    # objects: not one of the user's worktrees, sharing none of its refs.
    assert str(first_path) not in project.git("worktree", "list", "--porcelain")
    slot_git = first_path.parent / "git"
    assert (slot_git / "objects" / "info" / "alternates").read_text().strip() == \
        str((project.path / ".git" / "objects").resolve())
    assert project.git("-C", str(first_path), "rev-parse", "--absolute-git-dir").strip() == str(slot_git)
    assert project.git("-C", str(first_path), "status", "--porcelain", "--branch").startswith("## HEAD (no branch)")
    assert project.git("-C", str(first_path), "for-each-ref") == ""


def test_slot_is_cleaned_of_everything_a_check_left(project: GitRepo) -> None:
    repo = project.pygit2()
    project.commit("ignore", {".gitignore": "*.log\nbuild/\n"})
    pool = Pool(repo, size=1)
    with pool.acquire(tip(project)) as slot:
        root = slot.path
        (root / "junk.txt").write_text("x")
        (root / "app.log").write_text("ignored but still junk")
        (root / "build" / "deep").mkdir(parents=True)
        (root / "build" / "deep" / "out.o").write_text("x")
        (root / "calc.py").write_text("clobbered\n")
        (root / "tests" / "test_calc.py").unlink()
        (root / "newdir").mkdir()
        (root / "newdir" / "f").write_text("x")
        readonly = root / "ro"
        readonly.mkdir()
        (readonly / "f").write_text("x")
        readonly.chmod(0o500)
        slot.repo.index.add("junk.txt")
        slot.repo.index.write()
        slot.clean()
        status = slot.repo.status(untracked_files="all", ignored=True)
        assert status == {}
        assert (root / "calc.py").read_text() == CALC
        assert (root / "tests" / "test_calc.py").exists()
        assert not (root / "app.log").exists() and not (root / "build").exists()


def test_a_crashed_use_is_cleaned_before_the_next_one(project: GitRepo) -> None:
    repo = project.pygit2()
    pool = Pool(repo, size=1)
    with pool.acquire(tip(project)) as slot:
        overlay = Overlay(repo, tip(project).tree)
        overlay.set("calc.py", 0o100644, b"patched\n")
        slot.write(overlay)
        (slot.path / "leftover").write_text("x")
        # No clean(): as if the process died mid-validation.
    with pool.acquire(tip(project)) as slot:
        assert (slot.path / "calc.py").read_text() == CALC
        assert not (slot.path / "leftover").exists()


def test_concurrent_users_get_distinct_slots(project: GitRepo) -> None:
    pool = Pool(project.pygit2(), size=2)
    with pool.acquire(tip(project)) as a, Pool(project.pygit2(), size=2).acquire(tip(project)) as b:
        assert a.path != b.path
        assert (a.path / "calc.py").exists() and (b.path / "calc.py").exists()


def test_deleted_slot_is_recreated_and_stale_slots_pruned(project: GitRepo) -> None:
    import shutil

    pool = Pool(project.pygit2(), size=1)
    with pool.acquire(tip(project)) as slot:
        slot_dir = slot.dir
    shutil.rmtree(slot_dir)
    with pool.acquire(tip(project)) as slot:
        assert (slot.path / "calc.py").read_text() == CALC
    assert "errauto-0" not in project.git("worktree", "list")

    old = time.time() - 30 * 86400
    os.utime(pool.dir / "slot-0.lock", (old, old))
    assert pool.prune() == [0]
    assert not slot_dir.exists()
    assert "errauto-0" not in project.git("worktree", "list")


def test_checks_cannot_see_the_previous_patch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The second patch's check fails if anything of the first patch (or of
    # the first check's output) is still in the worktree.
    probe = ("import pathlib, sys; bad = [p for p in ('first.txt', 'check-output.txt') "
             "if pathlib.Path(p).exists()]; pathlib.Path('check-output.txt').write_text('x'); "
             "sys.exit(1 if bad else 0)")
    project = python_project(tmp_path / "p", config=config_toml(
        lint=False, extra=f'[checks.probe]\ncommand = ["{PYTHON}", "-c", "{probe}"]\nweight = 0.5\n'))
    first = tmp_path / "first.patch"
    first.write_bytes(project.make_patch({"calc.py": CALC.replace("a * b", "a * b + 1"), "first.txt": "1\n"}))
    second = tmp_path / "second.patch"
    second.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))

    assert main(["apply", str(first), "--repo", str(project.path)]) == 1
    capsys.readouterr()
    assert main(["apply", str(second), "--repo", str(project.path), "--json"]) == 0, capsys.readouterr()
    result = json.loads(capsys.readouterr().out)
    assert {c["name"]: c["status"] for c in result["checks"]} == {"tests": "passed", "probe": "passed"}


@pytest.mark.slow
def test_slots_created_and_recycled_from_many_threads_and_processes(project: GitRepo) -> None:
    # Three processes of three threads each share one pool of four slots and
    # keep removing and recreating them: `git worktree add` in one must never
    # meet `git worktree prune` in another (it used to fail with "could not
    # create directory of 'worktrees/errauto-0'").
    import subprocess
    import sys

    from tests.helpers.slotstress import stress

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    others = [subprocess.Popen([sys.executable, "-m", "tests.helpers.slotstress", str(project.path), "12", "3"],
                               env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    failures = stress(str(project.path), 12, 3)
    for proc in others:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            failures.append(err)
    assert failures == []
    # Whatever the interleaving, git knows each slot once, and nothing else.
    listing = project.git("worktree", "list", "--porcelain")
    registered = [line for line in listing.splitlines() if line.startswith("worktree ")]
    assert len(registered) <= 1 + 4
    assert len(registered) == len(set(registered))
    assert project.git("worktree", "prune", "--dry-run", "-v") == ""


def test_a_slot_lock_deleted_by_prune_is_not_shared(tmp_path: Path) -> None:
    # Pool.prune deletes the lock file of a slot it removed. A process that
    # was waiting on the old file must not believe it holds the slot while
    # another holds the new file of the same name.
    import threading

    from errauto_daemon.locks import FileLock

    path = tmp_path / "slot-0.lock"
    pruner = FileLock(path)
    assert pruner.acquire()
    waiting = FileLock(path)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(waiting.acquire(blocking=True)))
    waiter.start()
    time.sleep(0.2)  # let it block on the old file
    path.unlink()
    newcomer = FileLock(path)
    assert newcomer.acquire()  # a fresh file: free
    pruner.release()
    waiter.join(0.5)
    assert got == [], "the waiter took a lock on a deleted file"
    newcomer.release()
    waiter.join(10)
    assert got == [True]
    assert os.fstat(waiting.fd).st_ino == path.stat().st_ino
    waiting.release()


def test_a_slot_view_shows_its_worktree_and_objects_and_hides_the_rest(project: GitRepo, tmp_path: Path) -> None:
    borrowed = tmp_path / "borrowed-objects"
    borrowed.mkdir()
    (project.path / ".git" / "objects" / "info" / "alternates").write_text(f"{borrowed}\n")
    with Pool(project.pygit2(), size=1).acquire(tip(project)) as slot:
        view = slot.view()
        assert view.writable == (slot.path,)
        git_dir = (project.path / ".git").resolve()
        assert git_dir / "objects" in view.readable and borrowed.resolve() in view.readable
        assert git_dir in view.hidden
        # The slot's own git dir is readable (git commands in a check work), and
        # nothing under the user's git dir but its objects.
        assert slot.dir / "git" in view.readable
        assert [p for p in view.readable if p.is_relative_to(git_dir)] == [git_dir / "objects"]
        assert not any(slot.path.is_relative_to(p) for p in view.readable)


# -- a slot carries nothing to the next use -------------------------------------

def worktree_as_files(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under `root` but its `.git` file: ("x" executable file, "f"
    other file, "l" symlink, "d" directory) and its bytes or link target. An
    unreadable file or directory fails the test."""
    out: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda exc: pytest.fail(str(exc))):
        here = Path(dirpath)
        for name in dirnames + filenames:
            path = here / name
            rel = str(path.relative_to(root))
            if rel == ".git":
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                assert st.st_mode & 0o700 == 0o700, f"{rel}: mode {oct(st.st_mode)}"
                out[rel] = ("d", b"")
            else:
                assert stat.S_ISREG(st.st_mode), rel
                executable = bool(st.st_mode & stat.S_IXUSR)
                assert st.st_mode & 0o700 == (0o700 if executable else 0o600), f"{rel}: mode {oct(st.st_mode)}"
                out[rel] = ("x" if executable else "f", path.read_bytes())
    return out


def tree_as_files(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str = "") -> dict[str, tuple[str, bytes]]:
    out: dict[str, tuple[str, bytes]] = {}
    for entry in tree:
        rel = prefix + str(entry.name)
        obj = repo[entry.id]
        if isinstance(obj, pygit2.Tree):
            out[rel] = ("d", b"")
            out.update(tree_as_files(repo, obj, rel + "/"))
        else:
            kind = {0o100755: "x", 0o100644: "f", 0o120000: "l"}[entry.filemode]
            out[rel] = (kind, obj.read_raw())
    return out


def assert_exactly_the_base(slot: Slot, project: GitRepo, base: pygit2.Commit) -> None:
    """The worktree holds the base tree, byte for byte and mode for mode; the
    slot's git dir holds nothing a check could have left for the next one."""
    assert worktree_as_files(slot.path) == tree_as_files(project.pygit2(), base.tree)
    assert (slot.path / ".git").read_text() == f"gitdir: {slot.gitdir}\n"
    in_slot = ("-C", str(slot.path))
    assert project.git(*in_slot, "rev-parse", "HEAD").strip() == str(base.id)
    # No skip-worktree (S) or assume-unchanged (lowercase) entry: all "H".
    flags = {line[:2] for line in project.git(*in_slot, "ls-files", "-v").splitlines()}
    assert flags == {"H "}
    assert project.git(*in_slot, "status", "--porcelain", "--ignored", "--untracked-files=all") == ""
    config = project.git(*in_slot, "config", "--local", "--list")
    assert "fsmonitor=false" in config and "hook" not in config
    assert not (slot.gitdir / "hooks").exists() and not (slot.gitdir / "info").exists()
    assert project.git(*in_slot, "for-each-ref") == ""


def run_in_slot(slot: Slot, script: str) -> None:
    """What a check would do: a shell script in the worktree, unsandboxed."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    subprocess.run(["sh", "-ec", script], cwd=slot.path, env=env, check=True, capture_output=True)


POISONS = {
    "skip-worktree": "git update-index --skip-worktree calc.py && echo 'def add(a, b): return 5' > calc.py",
    "assume-unchanged": "git update-index --assume-unchanged calc.py && echo 'def add(a, b): return 5' > calc.py",
    "the same size, mtime put back": (
        "touch -r calc.py stamp && sed -i 's/a - b/a + b/' calc.py && touch -r stamp calc.py && rm stamp"),
    "an index of the check's making": (
        "echo 'def add(a, b): return 5' > calc.py && git add calc.py && git commit -qm x && git reset -q --soft HEAD~"),
    "ignored files": (
        "printf 'secret*\\nbuild/\\n' > .gitignore && echo x > secret.txt && mkdir -p build/deep && echo x > build/deep/o "
        "&& mkdir -p \"$(git rev-parse --git-dir)/info\" && echo 'secret*' >> \"$(git rev-parse --git-dir)/info/exclude\" "
        "&& git add .gitignore"),
    "untracked conftest": "echo 'import sys' > tests/conftest.py",
    "attributes that make a changed file look the same": (
        "echo '* text eol=crlf' > .gitattributes && sed -i 's/$/\\r/' calc.py && git add --renormalize ."),
    "the .git file pointing elsewhere": "echo \"gitdir: $USER_GIT\" > .git",
    "the .git file replaced by a directory": "rm .git && git init -q . && git add -A",
    "a nested .git in a tracked directory": "echo \"gitdir: $USER_GIT\" > tests/.git",
    "executable bit": "chmod +x calc.py",
    "read-only file": "chmod 0400 tests/test_calc.py",
    "unreadable file": "chmod 0000 tools/lint.py",
    "file replaced by a symlink": "cp calc.py /tmp/errauto-slot-calc-$$ && rm calc.py && ln -s /tmp/errauto-slot-calc-$$ calc.py",
    "file replaced by a directory": "rm calc.py && mkdir calc.py && echo x > calc.py/inner",
    "directory replaced by a file": "rm -r tests && echo x > tests",
    "directory replaced by a symlink": "mv tests ../moved-tests && ln -s ../moved-tests tests",
    "directory made unreadable": "echo x > tests/junk && chmod 000 tests",
    "directory made read-only": "echo x > tools/junk && chmod 0500 tools",
    "a hook and core.fsmonitor planted": (
        "GD=$(git rev-parse --git-dir) && mkdir -p $GD/hooks && printf '#!/bin/sh\\ntouch $SENTINEL\\n' > $GD/hooks/post-index-change "
        "&& chmod +x $GD/hooks/post-index-change && git config core.fsmonitor \"touch $SENTINEL #\" "
        "&& git config core.hooksPath $GD/hooks && git config core.worktree /"),
    "HEAD moved and refs made": "git update-ref refs/heads/main HEAD && git checkout -q --detach HEAD~0 && git tag t",
    "an object planted in the slot": "echo planted | git hash-object -w --stdin >/dev/null",
    "alternates rewritten": "echo /nonexistent > \"$(git rev-parse --git-dir)/objects/info/alternates\"",
}


@pytest.mark.parametrize("cleaned", [True, False], ids=["cleaned", "crashed"])
@pytest.mark.parametrize("poison", sorted(POISONS))
def test_the_next_use_starts_from_exactly_the_base(project: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   poison: str, cleaned: bool) -> None:
    # Whatever a check did to the worktree, its index or its git dir, and
    # whether or not the slot was cleaned after it (a crash), the next use
    # holds the base tree exactly, as git and as the file system see it.
    sentinel = tmp_path / "fsmonitor-or-hook-ran"
    monkeypatch.setenv("SENTINEL", str(sentinel))
    monkeypatch.setenv("USER_GIT", str(project.path / ".git"))
    main_before = project.head("refs/heads/main")
    pool = Pool(project.pygit2(), size=1)
    base = tip(project)
    with pool.acquire(base) as slot:
        run_in_slot(slot, POISONS[poison])
        if cleaned:
            slot.clean()
    with pool.acquire(base) as slot:
        assert_exactly_the_base(slot, project, base)
        assert not sentinel.exists()
    assert project.head("refs/heads/main") == main_before
    assert project.git("status", "--porcelain") == ""


def test_a_check_cannot_move_the_users_refs_or_plant_in_their_git_dir(project: GitRepo) -> None:
    # A linked worktree shared the user's refs: `git update-ref refs/heads/main`
    # in a check moved main.
    first = project.head()
    second = project.commit("second", {"calc.py": CALC.replace("a - b", "a + b")})
    with Pool(project.pygit2(), size=1).acquire(tip(project)) as slot:
        run_in_slot(slot, f"git update-ref refs/heads/main {first} && git config core.hooksPath /tmp/evil"
                          " && mkdir -p \"$(git rev-parse --git-common-dir)/hooks\""
                          " && echo x > \"$(git rev-parse --git-common-dir)/hooks/post-commit\"")
    assert project.head("refs/heads/main") == second
    assert "hooksPath" not in project.git("config", "--local", "--list")
    assert not (project.path / ".git" / "hooks" / "post-commit").exists()


def test_result_trees_errauto_writes_are_readable_in_the_slot(project: GitRepo) -> None:
    # Trees written for a validation go to the user's object store; the slot
    # (and a check's git commands in it) reads them through its alternates.
    repo = project.pygit2()
    base = repo.references["refs/heads/main"].peel(pygit2.Commit)
    overlay = Overlay(repo, base.tree)
    overlay.set("calc.py", 0o100644, b"patched\n")
    tree_id = overlay.write_tree()
    with Pool(repo, size=1).acquire(base) as slot:
        assert isinstance(slot.repo[tree_id], pygit2.Tree)
        assert project.git("-C", str(slot.path), "cat-file", "-p", f"{tree_id}:calc.py") == "patched\n"
        assert not any((slot.gitdir / "objects").glob("??/*"))


def test_a_slot_made_by_an_earlier_version_leaves_the_users_worktree_list(project: GitRepo) -> None:
    pool = Pool(project.pygit2(), size=1)
    old = pool.dir / "slot-0" / "errauto-0"
    old.parent.mkdir(parents=True)
    project.git("worktree", "add", "--detach", str(old), "HEAD")
    (old.parent / "state.json").write_text(json.dumps({"base": project.head(), "clean": True}))
    assert str(old) in project.git("worktree", "list")
    with pool.acquire(tip(project)) as slot:
        assert slot.path == old
        assert project.git("-C", str(slot.path), "rev-parse", "--absolute-git-dir").strip() == str(slot.gitdir)
        assert_exactly_the_base(slot, project, tip(project))
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == 1
    assert not (project.path / ".git" / "worktrees").exists()
    # One left behind by a slot no longer used goes with the next prune.
    spare = pool.dir / "slot-5" / "errauto-5"
    spare.parent.mkdir(parents=True)
    project.git("worktree", "add", "--detach", str(spare), "HEAD")
    pool.prune()
    assert str(spare) not in project.git("worktree", "list") and not spare.exists()


POISON_TEST = '''\
import pathlib
import subprocess
import unittest

# Hide the real tests from the next patch: mark them skip-worktree, so that
# `git status` no longer sees them, and replace them with one that passes.
subprocess.run(["git", "update-index", "--skip-worktree", "tests/test_calc.py"], check=False)
pathlib.Path("tests/test_calc.py").write_text(
    "import unittest\\n\\n\\nclass CalcTest(unittest.TestCase):\\n"
    "    def test_nothing(self):\\n        pass\\n")


class PoisonTest(unittest.TestCase):
    def test_fails_so_this_patch_is_held(self):
        self.fail("held")
'''


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", ["bwrap", "off"])
def test_a_patch_that_breaks_the_tests_after_a_poisoned_slot_is_held(
        sandbox: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The first patch's tests mark the real test file skip-worktree in their
    # slot and replace it. Trusting `git status` left it so, and the next,
    # unrelated patch that breaks the tests was merged by itself. Sandboxed, the
    # slot's git dir is read-only to the check; unsandboxed, the proof must undo it.
    project = python_project(tmp_path / "p", config=config_toml(lint=False, top=f'sandbox = "{sandbox}"'))
    project.commit("fix add", {"calc.py": CALC.replace("a - b", "a + b")})
    main_before = project.head("refs/heads/main")
    first = tmp_path / "first.patch"
    first.write_bytes(project.make_patch({"tests/test_zz_poison.py": POISON_TEST}))
    second = tmp_path / "second.patch"
    second.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b").replace("a * b", "a * b + 1")}))

    assert main(["apply", str(first), "--repo", str(project.path)]) == 1
    capsys.readouterr()
    assert main(["apply", str(second), "--repo", str(project.path), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert {c["name"]: c["status"] for c in result["checks"]} == {"tests": "failed"}
    assert result["state"] == "awaiting_review"
    assert project.head("refs/heads/main") == main_before


def test_git_log_in_a_slot_of_a_shallow_clone_stops_where_the_clone_does(project: GitRepo, tmp_path: Path) -> None:
    project.commit("second", {"calc.py": CALC.replace("a - b", "a + b")})
    shallow = GitRepo.__new__(GitRepo)
    shallow.path = tmp_path / "shallow"
    project.git("clone", "-q", "--depth", "1", f"file://{project.path}", str(shallow.path))
    repo = shallow.pygit2()
    with Pool(repo, size=1).acquire(repo.head.peel(pygit2.Commit)) as slot:
        assert project.git("-C", str(slot.path), "log", "--format=%s") == "second\n"
