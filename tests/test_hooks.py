"""Hooks: the installer, the plain git hooks, the server hook, and the pre-commit framework."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from errauto_daemon import paths
from errauto_daemon.main import main
from errauto_daemon.store import Store
from tests.helpers.daemon import DaemonProcess, all_decided, wait_until
from tests.helpers.gitrepo import CALC, PYTHON, ROOT, GitRepo, git, python_project

FIXED = CALC.replace("a - b", "a + b")


def run_git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GIT_DIR")}
    full.update(env or {})
    return subprocess.run(("git", *args), cwd=cwd, capture_output=True, text=True, env=full)


# -- installer ------------------------------------------------------------------


def test_install_refuses_a_foreign_hook_then_keeps_it_as_a_backup(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = repo.path / ".git" / "hooks" / "pre-commit"
    foreign.write_text("#!/bin/sh\necho mine\n")
    foreign.chmod(0o755)

    assert main(["hooks", "install", "--repo", str(repo.path)]) == 2
    assert "was not written by errauto" in capsys.readouterr().err
    assert foreign.read_text() == "#!/bin/sh\necho mine\n"
    assert not (repo.path / ".git" / "hooks" / "pre-push").exists()  # all or nothing

    assert main(["hooks", "install", "--repo", str(repo.path), "--force"]) == 0
    assert "# errauto-hook" in foreign.read_text()
    assert (repo.path / ".git" / "hooks" / "pre-commit.errauto-backup").read_text() == "#!/bin/sh\necho mine\n"
    assert os.access(foreign, os.X_OK)
    assert main(["hooks", "install", "--repo", str(repo.path)]) == 0  # re-installing ours is fine

    assert main(["hooks", "uninstall", "--repo", str(repo.path)]) == 0
    assert foreign.read_text() == "#!/bin/sh\necho mine\n"
    assert not (repo.path / ".git" / "hooks" / "pre-push").exists()
    assert not (repo.path / ".git" / "hooks" / "pre-commit.errauto-backup").exists()


def test_install_honours_core_hooks_path(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.git("config", "core.hooksPath", ".githooks")
    assert main(["hooks", "install", "--repo", str(repo.path)]) == 0
    assert (repo.path / ".githooks" / "pre-commit").exists()
    assert not (repo.path / ".git" / "hooks" / "pre-commit").exists()


def test_install_on_a_bare_repository_is_the_server_hook(tmp_path: Path, repo: GitRepo,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "server.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo.path), str(bare))
    assert main(["hooks", "install", "--repo", str(bare)]) == 0
    hook = bare / "hooks" / "post-receive"
    assert hook.exists() and f"{PYTHON} -m errauto_daemon" in hook.read_text()
    assert not (bare / "hooks" / "pre-commit").exists()
    assert git(bare, "config", "receive.advertisePushOptions").strip() == "true"


# -- the plain git hooks -----------------------------------------------------------


def recorded() -> list[str]:
    """Everything errauto recorded: submissions and stored patch bytes."""
    patches = paths.patches_dir()
    stored = sorted(p.name for p in patches.iterdir()) if patches.exists() else []
    return [f"#{s.id} {s.source_detail}" for s in Store().submissions()] + stored


EVIL = b"diff --git a/../x b/../x\nnew file mode 100644\n--- /dev/null\n+++ b/../x\n@@ -0,0 +1 @@\n+x\n"


@pytest.fixture
def hooked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> GitRepo:
    """A project with errauto's plain git hooks installed."""
    project = python_project(tmp_path / "project")
    assert main(["hooks", "install", "--repo", str(project.path)]) == 0
    capsys.readouterr()
    return project


def test_install_adds_the_post_commit_hook_and_uninstall_removes_it(hooked: GitRepo) -> None:
    hooks = hooked.path / ".git" / "hooks"
    post_commit = hooks / "post-commit"
    assert "hook-impl post-commit" in post_commit.read_text() and os.access(post_commit, os.X_OK)
    assert f"{PYTHON} -m errauto_daemon" in post_commit.read_text()
    assert main(["hooks", "uninstall", "--repo", str(hooked.path)]) == 0
    assert not post_commit.exists() and not (hooks / "pre-commit").exists()


def test_plain_hooks_check_before_the_commit_and_submit_after_it(hooked: GitRepo) -> None:
    project = hooked
    incoming = project.path / "incoming"
    incoming.mkdir()
    (incoming / "fix.patch").write_bytes(project.make_patch({"calc.py": FIXED}))
    (incoming / "evil.patch").write_bytes(EVIL)
    project.git("add", "incoming")
    head = project.head()

    stopped = run_git(project.path, "commit", "-m", "a good and an unsafe patch")

    assert stopped.returncode != 0
    assert "errauto: incoming/evil.patch: unsafe patch: '..' in a path" in stopped.stdout + stopped.stderr
    assert project.head() == head
    assert recorded() == []  # the good one was not submitted either

    project.git("rm", "-q", "--cached", "incoming/evil.patch")
    done = run_git(project.path, "commit", "-m", "a patch to submit")

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "errauto: incoming/fix.patch applies on main" in output
    assert "awaiting review" in output  # the status line
    assert "errauto: submitted incoming/fix.patch as #1 (fix)" in output
    commit = project.head()
    [sub] = Store().submissions()
    assert (sub.source, sub.source_detail, sub.state) == ("post-commit", f"{commit}:incoming/fix.patch", "queued")
    assert Store().read_patch(sub.patch_sha256) == (incoming / "fix.patch").read_bytes()
    shown = subprocess.run([PYTHON, "-m", "errauto_daemon", "queue", "show", "1"], capture_output=True, text=True)
    assert f"source: post-commit ({commit}:incoming/fix.patch)" in shown.stdout


def test_plain_hooks_stop_a_patch_that_does_not_apply(hooked: GitRepo) -> None:
    project = hooked
    stale = project.make_patch({"calc.py": FIXED}).replace(b"-    return a - b", b"-    return a * b")
    project.write("stale.patch", stale)
    project.git("add", "stale.patch")
    head = project.head()

    stopped = run_git(project.path, "commit", "-m", "a patch for another version")

    assert stopped.returncode != 0
    assert "errauto: stale.patch: does not apply on main" in stopped.stdout + stopped.stderr
    assert project.head() == head
    assert recorded() == []


def test_plain_pre_commit_checks_what_commit_a_commits(hooked: GitRepo) -> None:
    # `git commit -a` commits through a temporary index (GIT_INDEX_FILE):
    # the check reads that one, not .git/index, which still holds the good version.
    project = hooked
    project.write("fix.patch", project.make_patch({"calc.py": FIXED}))
    project.git("add", "fix.patch")
    project.git("commit", "-q", "--no-verify", "-m", "a good patch file, not submitted")
    project.write("fix.patch", "this is no longer a patch\n")
    head = project.head()

    stopped = run_git(project.path, "commit", "-a", "-m", "break the patch file")

    assert stopped.returncode != 0, stopped.stdout + stopped.stderr
    assert "errauto: fix.patch:" in stopped.stdout + stopped.stderr
    assert project.head() == head


def test_a_commit_another_pre_commit_hook_stops_records_nothing(hooked: GitRepo) -> None:
    """The pre-commit stage only checks: another pre-commit hook that stops the commit leaves no trace."""
    project = hooked
    hook = project.path / ".git" / "hooks" / "pre-commit"
    hook.write_text(hook.read_text().replace("exec $ERRAUTO hook-impl pre-commit \"$@\"",
                                             "$ERRAUTO hook-impl pre-commit \"$@\" || exit 1\n"
                                             "echo 'another check failed'; exit 1"))
    project.write("fix.patch", project.make_patch({"calc.py": FIXED}))
    project.git("add", "fix.patch")

    stopped = run_git(project.path, "commit", "-m", "stopped by another hook")

    assert stopped.returncode != 0 and "another check failed" in stopped.stdout + stopped.stderr
    assert recorded() == []
    assert "errauto: fix.patch applies on main" in stopped.stdout + stopped.stderr


def test_post_commit_submits_only_for_a_commit_just_made(hooked: GitRepo) -> None:
    project = hooked
    project.write("fix.patch", project.make_patch({"calc.py": FIXED}))
    project.git("add", "fix.patch")
    assert run_git(project.path, "commit", "-qm", "a fix").returncode == 0
    first = project.head()

    amended = run_git(project.path, "commit", "--amend", "-m", "a fix, reworded")
    assert amended.returncode == 0
    assert "errauto: fix.patch is already submission #1 (queued)" in amended.stdout + amended.stderr
    # Run by hand (not by git after a commit), and after a checkout: nothing more.
    by_hand = subprocess.run([PYTHON, "-m", "errauto_daemon", "hook-impl", "post-commit"], cwd=project.path,
                             capture_output=True, text=True)
    assert by_hand.returncode == 0
    assert "not submitted: not run by git after a commit" in by_hand.stdout
    [sub] = Store().submissions()
    assert sub.source_detail == f"{first}:fix.patch"  # the commit it first came with


def test_post_commit_skips_what_no_verify_let_through_and_never_fails(hooked: GitRepo) -> None:
    project = hooked
    project.write("fix.patch", project.make_patch({"calc.py": FIXED}))
    project.write("evil.patch", EVIL)
    project.git("add", "evil.patch", "fix.patch")

    done = run_git(project.path, "commit", "--no-verify", "-m", "past the check")

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "errauto: evil.patch: not submitted: unsafe patch" in output
    assert "errauto: submitted fix.patch as #1" in output
    assert [s.source_detail for s in Store().submissions()] == [f"{project.head()}:fix.patch"]

    # errauto cannot work (a broken configuration): the commit stands, one warning line.
    project.write("other.patch", project.make_patch({"calc.py": CALC.replace("-a", "0 - a")}))
    project.write(".errauto.toml", "colour = 'blue'\n")
    project.git("add", ".errauto.toml", "other.patch")
    broken = run_git(project.path, "commit", "--no-verify", "-m", "break the config")
    assert broken.returncode == 0
    assert "errauto: warning: the commit was made but its patch files were not submitted" in broken.stderr
    assert "colour" in broken.stderr
    assert len(Store().submissions()) == 1


def test_skip_errauto_submit_commits_without_submitting(hooked: GitRepo) -> None:
    hooked.write("fix.patch", hooked.make_patch({"calc.py": FIXED}))
    hooked.git("add", "fix.patch")
    done = run_git(hooked.path, "commit", "-m", "keep it", env={"SKIP": "errauto-submit"})
    assert done.returncode == 0, done.stderr
    assert Store().submissions() == []


def test_post_commit_files_narrows_what_is_submitted_and_check_warns_without_post_commit(
        hooked: GitRepo) -> None:
    project = hooked
    hook = project.path / ".git" / "hooks" / "post-commit"
    hook.write_text(hook.read_text().replace("hook-impl post-commit", "hook-impl post-commit --files '^fixes/'"))
    fix, sample = (project.make_patch({"calc.py": FIXED}), project.make_patch({"calc.py": CALC.replace("-a", "0 - a")}))
    project.write("fixes/fix.patch", fix)
    project.write("testdata/sample.patch", sample)
    project.git("add", "fixes", "testdata")
    assert run_git(project.path, "commit", "-qm", "a fix and test data").returncode == 0
    assert [s.source_detail for s in Store().submissions()] == [f"{project.head()}:fixes/fix.patch"]

    hook.unlink()
    project.write("other.patch", project.make_patch({"calc.py": CALC.replace("a * b", "b * a")}))
    project.git("add", "other.patch")
    done = run_git(project.path, "commit", "-qm", "no post-commit hook")
    assert done.returncode == 0
    assert "errauto: warning: no post-commit hook is installed" in done.stderr


def test_hook_impl_submit_only_checks_now(repo: GitRepo, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    project = python_project(repo.path.parent / "project")
    project.write("fix.patch", project.make_patch({"calc.py": FIXED}))
    monkeypatch.chdir(project.path)
    assert main(["hook-impl", "submit", "fix.patch"]) == 0
    assert "only checks now" in capsys.readouterr().out
    assert recorded() == []


def test_plain_pre_push_hook_prints_status_and_blocks_only_when_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = python_project(tmp_path / "project")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    project.git("remote", "add", "origin", str(remote))
    assert main(["hooks", "install", "--repo", str(project.path)]) == 0
    pushed = run_git(project.path, "push", "-q", "origin", "main")
    assert pushed.returncode == 0, pushed.stderr
    assert "daemon not running" in pushed.stdout + pushed.stderr

    hook = project.path / ".git" / "hooks" / "pre-push"
    hook.write_text(hook.read_text().replace("hook-impl pre-push", "hook-impl pre-push --fail-on warning"))
    blocked = run_git(project.path, "push", "-q", "origin", "main:other")
    assert blocked.returncode != 0  # no daemon running is a warning


# -- the server hook ------------------------------------------------------------------




def test_push_to_refs_for_main_is_queued_and_then_decided_by_the_daemon(
        server: tuple[Path, Path], tmp_path: Path) -> None:
    bare, dev = server
    (dev / "calc.py").write_text(FIXED)
    git(dev, "commit", "-qam", "Fix add()")

    pushed = run_git(dev, "push", "-o", "errauto.note=from the bench", "origin", "HEAD:refs/for/main")

    assert pushed.returncode == 0, pushed.stderr
    assert "remote: errauto: queued 1 (Fix add())" in pushed.stderr
    sub = Store().get(1)
    assert (sub.source, sub.source_detail, sub.state) == ("post-receive", "refs/for/main", "queued")
    assert sub.note == "from the bench"
    assert sub.author == "Test Author <test@example.com>"

    daemon = DaemonProcess(tmp_path / "daemon.log").start()
    try:
        [decided] = wait_until(lambda: all_decided(Store(), 1), what="the daemon's decision")
    finally:
        daemon.kill()
    assert decided.state == "merged"
    assert git(bare, "log", "-1", "--format=%s", "main").strip() == "Fix add()"


def test_other_refs_and_deletions_are_ignored(server: tuple[Path, Path]) -> None:
    bare, dev = server
    (dev / "calc.py").write_text(FIXED)
    git(dev, "commit", "-qam", "work in progress")
    for args in (("push", "origin", "HEAD:refs/heads/topic"), ("push", "origin", "HEAD:refs/for/main"),
                 ("push", "origin", ":refs/for/main")):
        done = run_git(dev, *args)
        assert done.returncode == 0, done.stderr
    assert len(Store().submissions()) == 1


def test_the_hook_never_fails_a_push(server: tuple[Path, Path]) -> None:
    bare, dev = server
    # A broken config on the server's target: errauto cannot work, the push must still land.
    (dev / ".errauto.toml").write_text("colour = 'blue'\n")
    git(dev, "commit", "-qam", "break the config")
    git(dev, "push", "-q", "origin", "HEAD:main")
    (dev / "calc.py").write_text(FIXED)
    git(dev, "commit", "-qam", "Fix add()")

    pushed = run_git(dev, "push", "origin", "HEAD:refs/for/main")

    assert pushed.returncode == 0
    assert "remote: errauto: warning: the push was accepted but not submitted" in pushed.stderr
    assert "colour" in pushed.stderr
    assert git(bare, "rev-parse", "refs/for/main").strip() == git(dev, "rev-parse", "HEAD").strip()


def test_validation_run_from_a_hook_ignores_the_hooks_git_environment(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a hook GIT_DIR, GIT_INDEX_FILE and GIT_WORK_TREE name the user's repository.
    A check's own git commands must still act on the validation worktree, and the
    user's index must not be touched."""
    # The check prints what git says into its log (a sandboxed check writes nothing outside its worktree).
    script = ("import subprocess; out = subprocess.run(['git', 'rev-parse', '--absolute-git-dir'], "
              "capture_output=True, text=True).stdout; print('git dir:', out)")
    from tests.helpers.gitrepo import config_toml

    project = python_project(tmp_path / "project", config=config_toml(
        extra=f'[checks.probe]\ncommand = ["{PYTHON}", "-c", "{script}"]\nweight = 0.1\n'))
    patch = tmp_path / "fix.patch"
    patch.write_bytes(project.make_patch({"calc.py": FIXED}))
    index = project.path / ".git" / "index"
    before = index.read_bytes()
    monkeypatch.setenv("GIT_DIR", str(project.path / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(project.path))
    monkeypatch.setenv("GIT_INDEX_FILE", str(index))

    code = main(["apply", str(patch), "--repo", str(project.path), "--json"])

    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert {c["name"]: c["status"] for c in result["checks"]}["probe"] == "passed"
    log = Path({c["name"]: c["log"] for c in result["checks"]}["probe"]).read_text()
    assert log.split("git dir: ", 1)[1].split("\n", 1)[0].strip().endswith("/slot-0/git")  # the slot's own git dir
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert project.git("status", "--porcelain") == ""  # the merge moved index and files together
    assert index.read_bytes() != before  # ... by git's own read-tree, once


# -- the pre-commit framework, against this repository's manifest ------------------------


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository as it is now (uncommitted work included), as a git repository."""
    dest = tmp_path_factory.mktemp("hookrepo") / "errauto"
    dest.mkdir()
    listing = subprocess.run(("git", "ls-files", "-co", "--exclude-standard", "-z"), cwd=ROOT,
                             capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listing):
        source = ROOT / name
        if source.is_symlink() or source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                (dest / name).symlink_to(os.readlink(source))
            else:
                shutil.copy2(source, dest / name)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "PATH": os.environ["PATH"], "HOME": str(dest.parent)}
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-qm", "snapshot")):
        subprocess.run(("git", *args), cwd=dest, env=env, check=True, capture_output=True)
    return dest


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Shared by the session: the framework builds errauto's hook environment once.
    return tmp_path_factory.mktemp("pre-commit-home")


FRAMEWORK_CONFIG = """\
default_install_hook_types: [pre-commit, post-commit]
repos:
-   repo: {repo}
    rev: {rev}
    hooks:
    -   id: errauto-check
    -   id: errauto-submit
    -   id: errauto-status
-   repo: local
    hooks:
    -   id: no-wip
        name: no work in progress
        entry: WIP files may not be committed
        language: fail
        files: WIP
"""


@pytest.fixture
def framework(tmp_path: Path, hook_repo: Path, pre_commit_home: Path,
              monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    """A project using this repository's hooks through the pre-commit framework, both hook types installed."""
    monkeypatch.setenv("PRE_COMMIT_HOME", str(pre_commit_home))
    monkeypatch.setenv("PIP_CACHE_DIR", str(pre_commit_home / "pip-cache"))
    project = python_project(tmp_path / "project")
    (project.path / ".pre-commit-config.yaml").write_text(
        FRAMEWORK_CONFIG.format(repo=hook_repo, rev=git(hook_repo, "rev-parse", "HEAD").strip()))
    project.git("add", ".pre-commit-config.yaml")
    project.git("commit", "-qm", "use errauto's hooks")
    installed = pre_commit(project, "install")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (project.path / ".git" / "hooks" / "post-commit").exists()
    return project


def pre_commit(project: GitRepo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "pre_commit", *args], cwd=project.path, capture_output=True, text=True)


@pytest.mark.slow
def test_framework_a_bad_patch_file_stops_the_commit_and_nothing_is_submitted(framework: GitRepo) -> None:
    project = framework
    project.write("fix.patch", project.make_patch({"calc.py": FIXED}))
    project.write("broken.diff", "diff --git a/x b/x\n@@ -1 +1 @@\n-a\n")
    project.git("add", "fix.patch", "broken.diff")
    head = project.head()

    bad = run_git(project.path, "commit", "-m", "a good and a broken patch")

    output = bad.stdout + bad.stderr
    assert bad.returncode != 0
    assert recorded() == []  # the good one was not submitted either
    assert project.head() == head and project.read("calc.py") == CALC
    assert "errauto check" in output and "Failed" in output
    assert "errauto: broken.diff:" in output


@pytest.mark.slow
def test_framework_submits_after_the_commit_tied_to_it(framework: GitRepo) -> None:
    project = framework
    project.write("fix.patch", project.make_patch({"calc.py": FIXED}))
    project.write("WIP.txt", "not yet\n")
    project.git("add", "fix.patch", "WIP.txt")

    # errauto-check passes, another hook stops the commit: nothing may be recorded.
    stopped = run_git(project.path, "commit", "-m", "not yet")
    assert stopped.returncode != 0
    assert "WIP files may not be committed" in stopped.stdout + stopped.stderr
    assert recorded() == []

    project.git("rm", "-q", "--cached", "WIP.txt")
    good = run_git(project.path, "commit", "-m", "submit a fix")

    output = good.stdout + good.stderr
    assert good.returncode == 0, output
    assert "errauto check" in output and "errauto submit" in output and "Passed" in output
    assert "awaiting review" in output  # errauto-status is verbose
    assert "errauto: submitted fix.patch as #1 (fix)" in output  # errauto-submit is verbose
    [sub] = Store().submissions()
    assert (sub.source, sub.source_detail, sub.title) == ("post-commit", f"{project.head()}:fix.patch", "fix")


@pytest.mark.slow
def test_framework_runs_by_hand_record_nothing(framework: GitRepo) -> None:
    project = framework
    project.write("fix.patch", project.make_patch({"calc.py": FIXED}))
    project.git("add", "fix.patch")
    committed = run_git(project.path, "commit", "-m", "a patch file", env={"SKIP": "errauto-submit"})
    assert committed.returncode == 0, committed.stdout + committed.stderr
    for args in (("--all-files",), ("--all-files", "--hook-stage", "post-commit"), ("--hook-stage", "post-commit")):
        done = pre_commit(project, "run", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert recorded() == [], args
    assert "not submitted: not run by git after a commit" in done.stdout


def test_plain_pre_commit_refuses_a_patch_into_the_inbox_folder_as_the_validator_does(hooked: GitRepo) -> None:
    project = hooked
    project.write("incoming/inbox.patch", project.make_patch({"patches/x.patch": "not for merging\n"}))
    project.git("add", "incoming")
    head = project.head()

    stopped = run_git(project.path, "commit", "-m", "a patch that writes into the inbox")

    assert stopped.returncode != 0
    assert "errauto: incoming/inbox.patch: touches the inbox folder patches/ (patches/x.patch)" \
        in stopped.stdout + stopped.stderr
    assert project.head() == head and recorded() == []
