"""The guard, attacked.

Every hostile patch goes through the real `errauto apply` against a real
project repository that sits next to a "victim" directory outside it. Each
CLI test snapshots every file and directory under tmp_path except errauto's
own state dir (path, type, size, mtime, content hash) before and after, so a
write anywhere else -- the user's checkout, the repository's .git (objects,
refs, config, hooks), the victim -- fails the test, even if it was undone.

The world every CLI test starts from (see `world`):

    tmp_path/project          python_project(): calc.py (add() is buggy), tests, lint
        escape -> /abs/victim    committed symlinks pointing outside the repo
        rel -> ../victim
    tmp_path/victim/secret.txt
    tmp_path/state            errauto's state dir (ERRAUTO_HOME)

The rules themselves (`path_problem`, `is_dotgit`, `symlink_problem`,
`protected_hits`, `check_tree`) are unit-tested at the bottom.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2
import pytest

from errauto_daemon import guard
from errauto_daemon.config import DEFAULT_PROTECTED
from errauto_daemon.errors import PatchRejected
from errauto_daemon.patchapply import Overlay
from errauto_daemon.patchfile import MODE_FILE, MODE_GITLINK, MODE_LINK, FilePatch, PatchCommit
from tests.helpers.cli import run
from tests.helpers.gitrepo import CALC, GitRepo, config_toml, git, python_project
from tests.helpers.snapshot import snapshot, snapshot_diff

FIXED_CALC = CALC.replace("a - b", "a + b")
SECRET = b"the victim's secret\n"
PAYLOAD = b"[core]\n\tfsmonitor = touch /tmp/errauto-pwned\n"


# --------------------------------------------------------------------------
# the world, and how to look at it

@dataclass
class World:
    root: Path  # tmp_path
    project: GitRepo
    victim: Path
    incoming: Path  # patch files are written here, before any snapshot

    @property
    def secret(self) -> Path:
        return self.victim / "secret.txt"

    @property
    def state(self) -> Path:
        return self.root / "state"


@pytest.fixture
def world(tmp_path: Path) -> World:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "secret.txt").write_bytes(SECRET)
    project = python_project(tmp_path / "project")
    os.symlink(str(victim), project.path / "escape")
    os.symlink("../victim", project.path / "rel")
    project.commit("symlinks that point outside the repository")
    assert project.git("ls-files", "-s", "escape", "rel").count("120000") == 2
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    # Created up front so that its appearance does not change tmp_path's mtime.
    (tmp_path / "state").mkdir()
    return World(tmp_path, project, victim, incoming)


def refs(repo: GitRepo) -> str:
    return repo.git("for-each-ref", "--format=%(refname) %(objectname)") + repo.git("symbolic-ref", "HEAD")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code, out, err = run(capsys, *args)
    return code, out + err


@dataclass
class Outcome:
    code: int
    output: str
    row: dict[str, Any]  # `errauto queue show ID --json`
    changed: list[str]  # what changed outside the state dir
    refs_before: str
    refs_after: str


def submit(world: World, capsys: pytest.CaptureFixture[str], data: bytes,
           name: str = "hostile.patch", *, skip: tuple[Path, ...] = (),
           mtime_may_change: tuple[str, ...] = ()) -> Outcome:
    patch = world.incoming / name
    patch.write_bytes(data)
    ignore = (world.state,) + skip
    refs_before = refs(world.project)
    before = snapshot(world.root, skip=ignore)
    code, output = cli(capsys, "apply", str(patch), "--repo", str(world.project.path))
    after = snapshot(world.root, skip=ignore)
    found = re.search(r"^#(\d+) ", output, re.MULTILINE)
    assert found, output
    show_code, shown = cli(capsys, "queue", "show", found.group(1), "--json")
    assert show_code == 0, shown
    return Outcome(code, output, json.loads(shown), snapshot_diff(before, after, mtime_may_change),
                   refs_before, refs(world.project))


def assert_victim_untouched(world: World) -> None:
    assert sorted(p.name for p in world.victim.iterdir()) == ["secret.txt"]
    assert world.secret.read_bytes() == SECRET


def assert_rejected(world: World, outcome: Outcome, *needles: str) -> None:
    assert outcome.code == 4, outcome.output
    assert "rejected" in outcome.output.splitlines()[0], outcome.output
    reason = outcome.row["reason"] or ""
    assert outcome.row["state"] == "rejected", outcome.row
    assert f"reason: {reason}" in outcome.output
    for needle in needles:
        assert needle in reason, f"{needle!r} not in the reason {reason!r}"
    assert outcome.changed == [], "written outside the state dir:\n" + "\n".join(outcome.changed)
    assert outcome.refs_after == outcome.refs_before
    assert_victim_untouched(world)
    # Names are shown escaped: a hostile name cannot drive the user's terminal.
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", outcome.output), repr(outcome.output)


# --------------------------------------------------------------------------
# building hostile patches by hand

def quote(name: bytes) -> bytes:
    """A name as git writes it: C-quoted when it holds unusual bytes."""
    out = bytearray()
    special = False
    for byte in name:
        if byte in (0x22, 0x5C):
            out += b"\\" + bytes([byte])
        elif byte == 0x09:
            out += b"\\t"
        elif byte == 0x0A:
            out += b"\\n"
        elif byte < 0x20 or byte >= 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
            continue
        special = True
    return b'"' + bytes(out) + b'"' if special else bytes(out)


def _raw(name: str | bytes) -> bytes:
    return name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")


def _plus(body: bytes) -> bytes:
    lines = body.splitlines(keepends=True)
    out = b"".join(b"+" + line for line in lines)
    return out if body.endswith(b"\n") else out + b"\n\\ No newline at end of file\n"


def new_file(name: str | bytes, body: bytes = b"pwned\n", *, mode: str = "100644") -> bytes:
    raw = _raw(name)
    a, b = quote(b"a/" + raw), quote(b"b/" + raw)
    count = len(body.splitlines())
    return (b"diff --git %s %s\nnew file mode %s\n--- /dev/null\n+++ %s\n@@ -0,0 +1,%d @@\n"
            % (a, b, mode.encode(), b, count)) + _plus(body)


def symlink(name: str | bytes, target: str | bytes) -> bytes:
    return new_file(name, _raw(target), mode="120000")


def modify(name: str, old: bytes, new: bytes) -> bytes:
    return (f"diff --git a/{name} b/{name}\n--- a/{name}\n+++ b/{name}\n@@ -1 +1 @@\n".encode()
            + b"-" + old + b"+" + new)


def mbox(*commits: tuple[str, bytes]) -> bytes:
    out = b""
    for number, (subject, diff) in enumerate(commits, 1):
        out += (b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
                b"From: Mallory <mallory@example.com>\n"
                b"Date: Thu, 1 Jan 2026 00:00:00 +0000\n"
                + f"Subject: [PATCH {number}/{len(commits)}] {subject}\n\n---\n".encode()
                + diff + b"-- \n2.39.5\n\n")
    return out


def git_patch(repo: GitRepo, mutate: Callable[[Path], None], *index: tuple[str, ...]) -> bytes:
    """What `git diff --cached --binary` says after `mutate` and the `git update-index`
    calls in `index`; the checkout is restored."""
    mutate(repo.path)
    repo.git("add", "-A")
    for args in index:
        repo.git("update-index", *args)
    data = repo.diff("--cached", "--binary")
    repo.git("reset", "-q", "--hard", "HEAD")
    repo.git("clean", "-fdxq")
    assert data, "the mutation changed nothing"
    return data


def fix_add(world: World) -> bytes:
    """A good patch: it fixes add(), so every check passes."""
    return world.project.make_patch({"calc.py": FIXED_CALC})


def with_fix(world: World, data: bytes) -> bytes:
    """`data` plus the real fix, so that nothing but the guard stands between
    the attack and an auto-merge into the user's checkout."""
    if data.startswith(b"From "):  # a series: the fix is its first mail
        return mbox(("fix add", fix_add(world))) + data
    return fix_add(world) + data


# --------------------------------------------------------------------------
# hostile names: rejected before anything is applied or written

def _abs(world: World) -> str:
    return str(world.victim / "pwned.txt")


NAME_ATTACKS: list[tuple[str, Callable[[World], bytes], tuple[str, ...]]] = [
    ("dotdot", lambda w: new_file("../victim/pwned.txt"), ("'..' in a path", "../victim/pwned.txt")),
    ("dotdot-nested", lambda w: new_file("tests/../../victim/pwned.txt"), ("'..' in a path",)),
    ("dotdot-rename", lambda w: (
        b"diff --git a/calc.py b/../victim/calc.py\nsimilarity index 100%\n"
        b"rename from calc.py\nrename to ../victim/calc.py\n"), ("'..' in a path",)),
    ("absolute-a//", lambda w: new_file(_abs(w)), ("an absolute path",)),  # "a//tmp/..."
    ("absolute-plain-diff", lambda w: (
        f"--- /dev/null\n+++ {_abs(w)}\n@@ -0,0 +1 @@\n+pwned\n".encode()), ("an absolute path",)),
    ("absolute-rename-to", lambda w: (
        f"diff --git a/calc.py b/{_abs(w)}\nsimilarity index 100%\nrename from calc.py\n"
        f"rename to {_abs(w)}\n".encode()), ("an absolute path",)),
    ("drive-letter", lambda w: new_file("C:/Windows/System32/evil.dll"), ("drive-letter",)),
    ("drive-letter-relative", lambda w: new_file("c:evil.txt"), ("drive-letter",)),
    ("backslash", lambda w: new_file("..\\victim\\pwned.txt"), ("backslash",)),
    ("backslash-dotgit", lambda w: new_file(".git\\config", PAYLOAD), ("backslash",)),
    ("control-escape", lambda w: new_file("evil\x1b]0;owned\x07name.txt"), ("control characters",)),
    ("control-newline", lambda w: new_file("evil\nname.txt"), ("control characters",)),
    ("control-del", lambda w: new_file("evil\x7f.txt"), ("control characters",)),
    ("empty-component", lambda w: new_file("tests//evil.py"), ("empty path component",)),
    ("dot-component", lambda w: new_file("./.git/config", PAYLOAD), ("'.' in a path",)),
    # .git, in every spelling some filesystem folds into .git
    ("dotgit", lambda w: new_file(".git/config", PAYLOAD), ("inside .git", ".git/config")),
    ("dotgit-hook", lambda w: new_file(".git/hooks/post-checkout", b"#!/bin/sh\ntouch pwned\n",
                                       mode="100755"), ("inside .git",)),
    ("dotgit-upper", lambda w: new_file(".GIT/config", PAYLOAD), ("inside .git",)),
    ("dotgit-mixed", lambda w: new_file(".GiT/hooks/pre-commit", b"pwned\n"), ("inside .git",)),
    ("dotgit-8.3", lambda w: new_file("git~1/config", PAYLOAD), ("inside .git",)),
    ("dotgit-8.3-upper", lambda w: new_file("GIT~1/config", PAYLOAD), ("inside .git",)),
    ("dotgit-trailing-dot", lambda w: new_file(".git./config", PAYLOAD), ("inside .git",)),
    ("dotgit-trailing-space", lambda w: new_file(".git /config", PAYLOAD), ("inside .git",)),
    ("dotgit-trailing-dots-spaces", lambda w: new_file(".git. . /config", PAYLOAD), ("inside .git",)),
    ("dotgit-ntfs-stream", lambda w: new_file(".git::$INDEX_ALLOCATION/config", PAYLOAD),
     ("inside .git",)),
    ("dotgit-ntfs-stream-short", lambda w: new_file("git~1::$INDEX_ALLOCATION/config", PAYLOAD),
     ("inside .git",)),
    ("dotgit-hfs-zwnj", lambda w: new_file(".g\u200cit/config", PAYLOAD), ("inside .git",)),
    ("dotgit-hfs-bom", lambda w: new_file("\ufeff.git/config", PAYLOAD), ("inside .git",)),
    ("dotgit-hfs-rtl", lambda w: new_file(".GI\u202eT/config", PAYLOAD), ("inside .git",)),
    ("dotgit-nested", lambda w: new_file("vendor/lib/.git/config", PAYLOAD), ("inside .git",)),
    # Beyond git's own rules: what a normalising, case-folding filesystem may read as .git
    ("dotgit-dotted-capital-i", lambda w: new_file(".g\u0130t/config", PAYLOAD), ("inside .git",)),
    ("dotgit-fullwidth", lambda w: new_file("\uff0e\uff47\uff49\uff54/config", PAYLOAD), ("inside .git",)),
    ("dotgit-combining-dot", lambda w: new_file(".gi\u0307t/config", PAYLOAD), ("inside .git",)),
    ("dotgit-fullwidth-8.3", lambda w: new_file("\uff27\uff29\uff34~\uff11/config", PAYLOAD),
     ("inside .git",)),
    # Names the filesystem cannot hold: refused with a reason, not an internal error
    ("name-too-long", lambda w: new_file("src/" + "a" * 300 + ".py"), ("longer than 255 bytes",)),
    ("name-too-long-in-bytes", lambda w: new_file("\u00e9" * 128 + ".txt"), ("longer than 255 bytes",)),
    ("path-too-long", lambda w: new_file("/".join(["d" * 200] * 20) + "/x.txt"),
     (f"longer than {guard.MAX_PATH} bytes",)),
    ("dotgit-rename", lambda w: (
        b"diff --git a/calc.py b/.git/hooks/pre-commit\nsimilarity index 100%\n"
        b"rename from calc.py\nrename to .git/hooks/pre-commit\n"), ("inside .git",)),
    ("dotgit-copy", lambda w: (
        b"diff --git a/calc.py b/.git/hooks/pre-commit\nsimilarity index 100%\n"
        b"copy from calc.py\ncopy to .git/hooks/pre-commit\n"), ("inside .git",)),
    ("dotgit-plain-diff", lambda w: (
        b"--- /dev/null\n+++ b/.git/config\n@@ -0,0 +1,2 @@\n+[core]\n+\tfsmonitor = touch pwned\n"),
     ("inside .git",)),
    ("dotgit-mbox", lambda w: mbox(("harmless fix", new_file(".git/config", PAYLOAD))),
     ("inside .git",)),
    ("dotgit-second-mail", lambda w: mbox(("harmless", new_file("docs/ok.txt")),
                                          ("harmful", new_file(".GIT/config", PAYLOAD))),
     ("inside .git",)),
]


@pytest.mark.parametrize("build,needles", [(b, n) for _, b, n in NAME_ATTACKS],
                         ids=[i for i, _, _ in NAME_ATTACKS])
def test_hostile_name_is_rejected_and_nothing_is_written(
        world: World, capsys: pytest.CaptureFixture[str],
        build: Callable[[World], bytes], needles: tuple[str, ...]) -> None:
    # Alone, not with the fix: some are plain diffs or renames of calc.py, and
    # the names are refused before anything is applied either way.
    outcome = submit(world, capsys, build(world))
    assert_rejected(world, outcome, "unsafe patch", *needles)
    assert outcome.row["route"] == "rejected"


def test_a_parse_rejection_does_not_echo_control_characters(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    data = b"diff --git a/calc.py\x1b[2J b/calc.py\x1b[2J\n--- a/calc.py\n+++ b/calc.py\n" \
           b"@@ -1 +1 @@\n-def add(a, b):\n+def add(a, b):  # \n"
    outcome = submit(world, capsys, data)
    assert_rejected(world, outcome, "inconsistent")


# --------------------------------------------------------------------------
# symlinks

def _two_symlinks(first: tuple[str, str], second: tuple[str, str]) -> bytes:
    return symlink(*first) + symlink(*second)


SYMLINK_ATTACKS: list[tuple[str, Callable[[World], bytes], tuple[str, ...]]] = [
    ("target-too-long", lambda w: symlink("longlink", b"a/" * 2048), ("longer than",)),
    # beyond a symlink committed in the target (it points at the victim)
    ("beyond-base-symlink-absolute", lambda w: new_file("escape/pwned.txt"),
     ("escape/pwned.txt", "symlink")),
    ("beyond-base-symlink-relative", lambda w: new_file("rel/pwned.txt"), ("rel/pwned.txt", "symlink")),
    ("beyond-base-symlink-deep", lambda w: new_file("escape/sub/dir/pwned.txt"), ("symlink",)),
    ("beyond-base-symlink-rename", lambda w: (
        b"diff --git a/tools/lint.py b/escape/lint.py\nsimilarity index 100%\n"
        b"rename from tools/lint.py\nrename to escape/lint.py\n"), ("escape/lint.py", "symlink")),
    # beyond a symlink the same patch creates (libgit2 would make it a directory)
    ("beyond-new-symlink", lambda w: symlink("inner", "tests") + new_file("inner/pwned.py"),
     ("inner/pwned.py", "symlink")),
    ("beyond-new-symlink-series", lambda w: mbox(
        ("add a link", symlink("inner", "tests")),
        ("write through it", new_file("inner/pwned.py"))), ("inner/pwned.py", "symlink")),
    # where a new symlink points
    ("target-absolute", lambda w: symlink("evil", str(w.victim)), ("absolute path",)),
    ("target-absolute-file", lambda w: symlink("tests/evil.py", str(w.secret)), ("absolute path",)),
    ("target-drive-letter", lambda w: symlink("evil", "C:/Windows"), ("absolute path",)),
    ("target-dotdot", lambda w: symlink("evil", "../victim"), ("outside the repository",)),
    ("target-dotdot-nested", lambda w: symlink("tests/evil", "../../victim/secret.txt"),
     ("outside the repository",)),
    ("target-dotdot-sneaky", lambda w: symlink("tests/evil", "../tests/../../victim"),
     ("outside the repository",)),
    ("target-dotgit", lambda w: symlink("evil", ".git/config"), ("into .git",)),
    ("target-dotgit-dir", lambda w: symlink("hooks", ".git/hooks"), ("into .git",)),
    ("target-dotgit-upper", lambda w: symlink("evil", ".GIT"), ("into .git",)),
    ("target-dotgit-nested", lambda w: symlink("tests/evil", "../.git/hooks/pre-commit"),
     ("into .git",)),
    ("target-dotgit-8.3", lambda w: symlink("evil", "git~1/config"), ("into .git",)),
    ("target-backslash", lambda w: symlink("evil", "..\\victim"), ("backslash",)),
    ("target-newline", lambda w: symlink("evil", "calc.py\n../victim"), ("control characters",)),
    # Each link alone stays inside; followed as the filesystem does, the
    # second leaves the repository: up -> "." is the root, so up/.. is its parent.
    ("target-escapes-through-new-symlink",
     lambda w: _two_symlinks(("up", "."), ("evil", "up/../victim")), ("evil", "outside the repository")),
    ("target-escapes-through-nested-symlink", lambda w: _two_symlinks(
        ("tests/up", ".."), ("tests/evil", "up/../victim/secret.txt")),
     ("tests/evil", "outside the repository")),
    # A link into a committed link that already points outside.
    ("target-escapes-through-series", lambda w: mbox(
        ("a link to the root", symlink("up", ".")), ("a link through it", symlink("evil", "up/../victim"))),
     ("evil", "outside the repository")),
    ("target-escapes-through-base-symlink", lambda w: symlink("evil", "escape/secret.txt"),
     ("evil", "outside the repository")),
    ("mode-change-to-symlink", lambda w: (
        f"diff --git a/tests/__init__.py b/tests/__init__.py\nold mode 100644\nnew mode 120000\n"
        f"--- a/tests/__init__.py\n+++ b/tests/__init__.py\n@@ -0,0 +1 @@\n+{w.victim}\n"
        f"\\ No newline at end of file\n").encode(), ("tests/__init__.py", "absolute path")),
    # git itself never follows these as symlinks
    ("symlinked-gitmodules", lambda w: symlink(".gitmodules", "calc.py"),
     (".gitmodules", "may not be a symlink")),
    ("symlinked-gitattributes", lambda w: symlink(".gitattributes", "calc.py"),
     (".gitattributes", "may not be a symlink")),
    ("symlinked-gitignore", lambda w: symlink(".gitignore", "calc.py"),
     (".gitignore", "may not be a symlink")),
    ("symlinked-gitignore-nested", lambda w: symlink("tests/.gitignore", "../calc.py"),
     ("may not be a symlink",)),
    ("symlinked-gitignore-upper", lambda w: symlink(".GitIgnore", "calc.py"), ("may not be a symlink",)),
    ("symlinked-gitmodules-8.3", lambda w: symlink("GITMOD~1", "calc.py"), ("may not be a symlink",)),
    ("symlinked-gitmodules-8.3-hashed", lambda w: symlink("gi7eba~1", "calc.py"), ("may not be a symlink",)),
]


@pytest.mark.parametrize("build,needles", [(b, n) for _, b, n in SYMLINK_ATTACKS],
                         ids=[i for i, _, _ in SYMLINK_ATTACKS])
def test_symlink_attack_is_rejected_and_nothing_is_written(
        world: World, capsys: pytest.CaptureFixture[str],
        build: Callable[[World], bytes], needles: tuple[str, ...]) -> None:
    outcome = submit(world, capsys, with_fix(world, build(world)))
    assert_rejected(world, outcome, *needles)
    assert not (world.project.path / "evil").exists()


def test_symlink_attack_made_by_real_git_is_rejected(world: World,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    def mutate(root: Path) -> None:
        (root / "calc.py").write_text(FIXED_CALC)
        os.symlink("../victim", root / "tests" / "data")  # tests/data -> ../victim: still inside
        os.symlink("../../victim/secret.txt", root / "tests" / "fixture.txt")  # outside
    data = git_patch(world.project, mutate)
    assert b"new file mode 120000" in data
    outcome = submit(world, capsys, data)
    assert_rejected(world, outcome, "tests/fixture.txt", "outside the repository")


@pytest.mark.parametrize("data", [
    modify("escape/secret.txt", SECRET, b"pwned\n"),
    modify("rel/secret.txt", SECRET, b"pwned\n"),
    b"diff --git a/escape/secret.txt b/escape/secret.txt\ndeleted file mode 100644\n"
    b"--- a/escape/secret.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-" + SECRET,
], ids=["modify-absolute-link", "modify-relative-link", "delete"])
def test_changing_a_file_beyond_a_base_symlink_is_rejected(
        world: World, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    outcome = submit(world, capsys, with_fix(world, data))
    assert_rejected(world, outcome, "secret.txt")


def test_changing_a_file_beyond_a_base_symlink_names_the_symlink(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = submit(world, capsys, modify("escape/secret.txt", SECRET, b"pwned\n"))
    assert_rejected(world, outcome, "symlink", "escape")


def test_base_symlinks_that_point_outside_do_not_block_an_unrelated_symlink(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """The committed escape/rel links are the user's own: a patch adding a
    harmless link of its own is judged on that link alone."""
    def mutate(root: Path) -> None:
        (root / "calc.py").write_text(FIXED_CALC)
        os.symlink("test_calc.py", root / "tests" / "alias.txt")
        os.symlink("../tests", root / "tools" / "tests")
    outcome = submit(world, capsys, git_patch(world.project, mutate))
    assert outcome.code == 0, outcome.output
    assert outcome.row["state"] == "merged"
    assert os.readlink(world.project.path / "tests" / "alias.txt") == "test_calc.py"
    assert_victim_untouched(world)


def test_replacing_a_directory_with_a_harmless_symlink_is_accepted(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.project.commit("docs", {"docs/index.txt": "docs\n", "docs/more/page.txt": "page\n"})

    def mutate(root: Path) -> None:
        (root / "calc.py").write_text(FIXED_CALC)
        for path in sorted((root / "docs").rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        (root / "docs").rmdir()
        os.symlink("tests", root / "docs")
    data = git_patch(world.project, mutate)
    assert b"deleted file mode" in data and b"new file mode 120000" in data
    outcome = submit(world, capsys, data, skip=(world.project.path,))
    assert outcome.code == 0, outcome.output
    assert os.readlink(world.project.path / "docs") == "tests"
    assert_victim_untouched(world)


def test_replacing_a_directory_with_a_symlink_that_makes_a_committed_link_escape(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """data -> d/up/../../victim is inside while d/up is a directory; once the
    patch makes d/up a link to the root (itself harmless), data leaves the repo."""
    world.project.write("d/up/keep", "x\n")
    os.symlink("d/up/../../victim", world.project.path / "data")
    world.project.commit("a link through a directory")

    def mutate(root: Path) -> None:
        (root / "d" / "up" / "keep").unlink()
        (root / "d" / "up").rmdir()
        os.symlink("..", root / "d" / "up")
        (root / "calc.py").write_text(FIXED_CALC)
    outcome = submit(world, capsys, git_patch(world.project, mutate))
    assert_rejected(world, outcome, "symlink data", "outside the repository")


# --------------------------------------------------------------------------
# submodules and .gitmodules: never rejected, but at most reviewed

def validated(world: World, capsys: pytest.CaptureFixture[str], data: bytes) -> Outcome:
    """`submit` for a patch that gets as far as the checks. Validation writes the
    result's objects and the pooled worktree's admin dir (.git/worktrees, whose
    creation touches .git's mtime) into the repository; nothing else may change."""
    dotgit = world.project.path / ".git"
    return submit(world, capsys, data, skip=(dotgit / "objects", dotgit / "worktrees"),
                  mtime_may_change=("project/.git",))


def assert_held_for_review(world: World, outcome: Outcome, *needles: str) -> None:
    assert outcome.code == 1, outcome.output
    assert outcome.row["state"] == "awaiting_review", outcome.row
    assert outcome.row["route"] == "review"
    reason = outcome.row["reason"] or ""
    assert f"reason: {reason}" in outcome.output
    for needle in needles:
        assert needle in reason, f"{needle!r} not in the reason {reason!r}"
    # Every check passed: nothing but the rule held it back.
    checks = {c["name"]: c["status"] for c in outcome.row["checks"]}
    assert checks == {"tests": "passed", "lint": "passed"}, outcome.row["checks"]
    assert outcome.row["confidence"] == 1.0
    assert outcome.changed == [], "written outside the state dir:\n" + "\n".join(outcome.changed)
    assert outcome.refs_after == outcome.refs_before
    assert world.project.read("calc.py") == CALC  # not merged into the checkout
    assert_victim_untouched(world)


def test_new_submodule_is_held_for_review(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    sha = world.project.head()

    def mutate(root: Path) -> None:
        (root / "calc.py").write_text(FIXED_CALC)
    data = git_patch(world.project, mutate, ("--add", "--cacheinfo", f"160000,{sha},vendor/lib"))
    assert b"new file mode 160000" in data
    outcome = validated(world, capsys, data)
    assert_held_for_review(world, outcome, "submodule vendor/lib", "a person must review")


@pytest.mark.parametrize("change", ["update", "remove"])
def test_existing_submodule_change_is_held_for_review(
        world: World, capsys: pytest.CaptureFixture[str], change: str) -> None:
    old = world.project.head()
    world.project.git("update-index", "--add", "--cacheinfo", f"160000,{old},vendor/lib")
    world.project.git("commit", "-q", "-m", "add a submodule")
    (world.project.path / "vendor" / "lib").mkdir(parents=True)  # as a submodule not yet cloned
    assert world.project.git("status", "--porcelain") == ""
    new = world.project.git("commit-tree", "-m", "elsewhere", f"{old}^{{tree}}").strip()

    def mutate(root: Path) -> None:
        (root / "calc.py").write_text(FIXED_CALC)
    index = (("--add", "--cacheinfo", f"160000,{new},vendor/lib") if change == "update"
             else ("--force-remove", "vendor/lib"))
    data = git_patch(world.project, mutate, index)
    assert f"-Subproject commit {old}".encode() in data
    outcome = validated(world, capsys, data)
    assert_held_for_review(world, outcome, "submodule vendor/lib")


def test_gitmodules_change_is_held_for_review(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    def mutate(root: Path) -> None:
        (root / "calc.py").write_text(FIXED_CALC)
        (root / ".gitmodules").write_text(
            '[submodule "lib"]\n\tpath = lib\n\turl = https://attacker.example/lib.git\n')
    outcome = validated(world, capsys, git_patch(world.project, mutate))
    assert_held_for_review(world, outcome, ".gitmodules", "a person must review")


# --------------------------------------------------------------------------
# protected paths: never auto-merged, even when every check passes

@pytest.mark.parametrize("path,content", [
    (".github/workflows/ci.yml", "on: push\njobs: {}\n"),
    (".GitHub/workflows/ci.yml", "on: push\njobs: {}\n"),
    ("tests/conftest.py", "import os\n"),
    ("conftest.py", "import os\n"),
    ("tools/deep/conftest.py", "import os\n"),
    ("pyproject.toml", "[project]\nname = 'x'\n"),
    (".pre-commit-config.yaml", "repos: []\n"),
    (".errauto.toml", config_toml() + "auto_merge_threshold = 0.0\n"),
])
def test_protected_path_is_held_for_review(world: World, capsys: pytest.CaptureFixture[str],
                                           path: str, content: str) -> None:
    patch = world.project.make_patch({"calc.py": FIXED_CALC, path: content})
    outcome = validated(world, capsys, patch)
    assert_held_for_review(world, outcome, "protected paths", path)
    gates = outcome.row["explanation"]["gates"]
    assert any("protected" in g and path in g for g in gates), gates


def test_symlink_standing_in_for_a_protected_directory_is_held_for_review(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """`.github -> ci` puts ci/workflows/release.yml at .github/workflows/:
    every path the patch names is unprotected, the result is not."""
    def mutate(root: Path) -> None:
        (root / "calc.py").write_text(FIXED_CALC)
        (root / "ci" / "workflows").mkdir(parents=True)
        (root / "ci" / "workflows" / "release.yml").write_text("on: push\n")
        os.symlink("ci", root / ".github")
    outcome = validated(world, capsys, git_patch(world.project, mutate))
    assert_held_for_review(world, outcome, "protected paths", ".github")
    assert not (world.project.path / ".github").exists()


def test_the_same_fix_without_protected_paths_merges(world: World,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The control for the tests above: the fix alone is auto-merged."""
    outcome = submit(world, capsys, fix_add(world), skip=(world.project.path,))
    assert outcome.code == 0, outcome.output
    assert outcome.row["state"] == "merged"
    assert world.project.read("calc.py") == FIXED_CALC


# --------------------------------------------------------------------------
# size limit, already applied

def test_patch_over_the_size_limit_is_rejected(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.project.commit("tighten the limit", {".errauto.toml": "max_patch_bytes = 2000\n" + config_toml()})
    data = fix_add(world) + new_file("data.txt", b"".join(b"line %d\n" % i for i in range(300)))
    assert len(data) > 2000
    outcome = submit(world, capsys, data)
    assert_rejected(world, outcome, f"{len(data):,} bytes", "2,000", "max_patch_bytes")


def test_patch_at_the_size_limit_is_not_rejected_for_its_size(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    data = fix_add(world)
    world.project.commit("limit", {".errauto.toml": f"max_patch_bytes = {len(data)}\n" + config_toml()})
    outcome = submit(world, capsys, data, skip=(world.project.path,))
    assert outcome.code == 0, outcome.output


def test_already_applied_patch_is_rejected_as_such(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    data = fix_add(world)
    world.project.commit("fixed by hand", {"calc.py": FIXED_CALC})
    outcome = submit(world, capsys, data)
    assert_rejected(world, outcome, "already applied on main")
    assert outcome.row["route"] == "rejected"


# --------------------------------------------------------------------------
# a rejection leaves nothing in a bad state

def test_good_patch_merges_after_hostile_ones(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    hostile = [
        (new_file(".git/config", PAYLOAD), 4),
        (fix_add(world) + new_file("escape/pwned.txt"), 4),
        (fix_add(world) + _two_symlinks(("up", "."), ("evil", "up/../victim")), 4),
        (fix_add(world) + symlink(".gitignore", "calc.py"), 4),
        # validated and held: it used (and must have cleaned) a pooled worktree
        (world.project.make_patch({"calc.py": FIXED_CALC, "tests/conftest.py": "import os\n"}), 1),
    ]
    for number, (data, expected) in enumerate(hostile, 1):
        path = world.incoming / f"hostile-{number}.patch"
        path.write_bytes(data)
        code, out = cli(capsys, "apply", str(path), "--repo", str(world.project.path))
        assert code == expected, out
    base = world.project.head("main")
    assert world.project.git("status", "--porcelain") == ""

    good = world.incoming / "fix-add.patch"
    good.write_bytes(fix_add(world))
    code, out = cli(capsys, "apply", str(good), "--repo", str(world.project.path))

    assert code == 0, out
    assert "merged into main" in out
    assert world.project.git("rev-parse", "main^").strip() == base
    assert world.project.read("calc.py") == FIXED_CALC
    assert world.project.git("status", "--porcelain") == ""
    tree = world.project.git("ls-tree", "-r", "--name-only", "main").split()
    assert not {"evil", "up", ".gitignore", "escape/pwned.txt", "tests/conftest.py"} & set(tree)
    assert_victim_untouched(world)
    # The pooled worktree is back to its base: nothing a hostile patch wrote survives.
    slots = sorted((world.state / "cache" / "worktrees").glob("*/slot-*/errauto-*"))
    assert slots
    for slot in slots:
        assert git(slot, "status", "--porcelain", "--ignored") == "", slot


# --------------------------------------------------------------------------
# unit: the rules

@pytest.mark.parametrize("path", [
    "calc.py", "tests/test_calc.py", ".github/workflows/ci.yml", ".gitignore", ".gitmodules",
    ".gitattributes", "git", "gitx", ".gitx", ".git-blame-ignore-revs", "x.git", "a.git/b",
    "git~", "git~a", "..git", "...", "dir with spaces/file name.txt", "ünïcode/ファイル.py",
    "/".join(["a" * 255] * 15)[:guard.MAX_PATH], "ab:c", "a/b:c", "sub/.github/x", "é" * 127,
])
def test_path_problem_accepts(path: str) -> None:
    assert guard.path_problem(path) is None


@pytest.mark.parametrize("path,needle", [
    ("", "empty file name"),
    ("a" * (guard.MAX_PATH + 1), "longer than"),
    ("/etc/passwd", "absolute path"),
    ("//etc/passwd", "absolute path"),
    ("C:/Windows", "drive-letter"),
    ("c:\\Windows", "drive-letter"),
    ("z:evil", "drive-letter"),
    ("a\\b", "backslash"),
    ("..\\..\\x", "backslash"),
    ("a\x00b", "control characters"),
    ("a\tb", "control characters"),
    ("a\nb", "control characters"),
    ("a\rb", "control characters"),
    ("a\x1b[31mb", "control characters"),
    ("a\x7fb", "control characters"),
    ("a//b", "empty path component"),
    ("a/", "empty path component"),
    ("..", "'..' in a path"),
    ("../x", "'..' in a path"),
    ("a/../../x", "'..' in a path"),
    ("a/..", "'..' in a path"),
    (".", "'.' in a path"),
    ("./x", "'.' in a path"),
    ("a/./b", "'.' in a path"),
    (".git", "inside .git"),
    (".git/config", "inside .git"),
    ("a/b/.git/hooks/x", "inside .git"),
    (".GIT/config", "inside .git"),
    ("git~1/config", "inside .git"),
    (".git./config", "inside .git"),
    (".git /config", "inside .git"),
    (".git::$INDEX_ALLOCATION/config", "inside .git"),
    (".g\u200cit/config", "inside .git"),
    ("a" * 256, "longer than 255 bytes"),
    ("dir/" + "\u00e9" * 128, "longer than 255 bytes"),
    ("/".join(["a" * 255] * 16), f"longer than {guard.MAX_PATH} bytes"),
])
def test_path_problem_rejects(path: str, needle: str) -> None:
    problem = guard.path_problem(path)
    assert problem is not None and needle in problem, problem


def test_path_problem_shows_control_characters_escaped() -> None:
    problem = guard.path_problem("evil\x1b]0;x\x07")
    assert problem is not None
    assert "\x1b" not in problem and "\\x1b" in problem


@pytest.mark.parametrize("name", [
    ".git", ".GIT", ".Git", "git~1", "GIT~1", "git~2", "git~12",
    ".git.", ".git..", ".git ", ".git  ", ".git. .", ".git . ",
    ".git::$INDEX_ALLOCATION", ".git:$DATA", ".git:stream", ".GIT::$index_allocation", "git~1:x",
    ".g\u200cit", ".gi\u200dt", "\u200e.git", ".git\u200f", ".\u202ag\u202bi\u202ct", "\u202d.git\u202e",
    ".g\u206ait", "\u206f.git", "\ufeff.git", ".G\u200cIT",
    ".g\u200cit. ::$INDEX_ALLOCATION",
    # errauto's own, beyond git's: compatibility forms, combining marks, Unicode case
    ".g\u0130t", ".G\u0130T", "\uff0e\uff47\uff49\uff54", ".\uff47it", ".gi\u0307t",
    "\uff47\uff49\uff54~\uff11", ".g\u00eft", "\uff0egit\uff0e", ".git\u3000", "\uff0e\uff47\uff49\uff54\uff1a\uff1a$INDEX_ALLOCATION",
])
def test_is_dotgit(name: str) -> None:
    assert guard.is_dotgit(name)


@pytest.mark.parametrize("name", [
    "git", ".gi", ".gitx", "..git", "x.git", ".git-foo", ".github", ".gitignore", ".gitmodules",
    "git~", "git~a", "git~1x", "agit~1", "", ".", "..", ".g\u200bit",
])
def test_is_not_dotgit(name: str) -> None:
    assert not guard.is_dotgit(name)


@pytest.mark.parametrize("name", [".gitmodules", ".GITMODULES", ".gitmodules.", ".gitmodules ",
                                  ".gitmodules::$DATA", "gitmod~1", "GITMOD~4", "gi7eba~1", "GI7EBA~9",
                                  ".git\u200cmodules", "\uff0egitmodules", ".g\u0130tmodules",
                                  "\uff47\uff49\uff54\uff4d\uff4f\uff44~1"])
def test_is_gitmodules(name: str) -> None:
    assert guard.is_gitmodules(name)


@pytest.mark.parametrize("name", [".gitmodule", "gitmodules", ".gitmodulesx", "gitmod~", "gi7eba"])
def test_is_not_gitmodules(name: str) -> None:
    assert not guard.is_gitmodules(name)


@pytest.mark.parametrize("path,target", [
    ("link", b"calc.py"),
    ("link", b"."),
    ("link", b"tests"),
    ("link", b"tests/"),
    ("a/link", b".."),
    ("a/b/link", b"../../calc.py"),
    ("a/b/link", b"../x/../y"),
    ("link", b"does/not/exist"),
    ("link", b".gitignore"),
    ("link", b".github/workflows"),
    ("link", b"x.git/y"),
    ("link", "ünïcode".encode()),
])
def test_symlink_problem_accepts(path: str, target: bytes) -> None:
    assert guard.symlink_problem(path, target) is None


@pytest.mark.parametrize("path,target,needle", [
    ("link", b"", "empty target"),
    ("link", b"a\0b", "control characters"),
    ("link", b"a\nb", "control characters"),
    ("link", b"/", "absolute path"),
    ("link", b"/etc/passwd", "absolute path"),
    ("a/b/link", b"//etc", "absolute path"),
    ("link", b"C:/Windows", "absolute path"),
    ("link", b"c:x", "absolute path"),
    ("link", b"..\\x", "backslash"),
    ("link", b"..", "outside the repository"),
    ("link", b"../x", "outside the repository"),
    ("link", b"./../x", "outside the repository"),
    ("a/link", b"../..", "outside the repository"),
    ("a/b/link", b"../../../x", "outside the repository"),
    ("link", b"x/../../y", "outside the repository"),
    ("link", b"a/b/../../..", "outside the repository"),
    ("link", b".git", "into .git"),
    ("link", b".git/config", "into .git"),
    ("link", b"./.git", "into .git"),
    ("a/link", b"../.git/hooks", "into .git"),
    ("link", b"sub/.git", "into .git"),
    ("link", b".GIT", "into .git"),
    ("link", b"git~1", "into .git"),
    ("link", b".git.", "into .git"),
    ("link", b".git ", "into .git"),
    ("link", ".g\u200cit".encode(), "into .git"),
    ("link", "\uff0e\uff47\uff49\uff54/config".encode(), "into .git"),
    ("link", b"a/" * 2048, "longer than"),
])
def test_symlink_problem_rejects(path: str, target: bytes, needle: str) -> None:
    problem = guard.symlink_problem(path, target)
    assert problem is not None and needle in problem, problem


# gitignore-style globs, anchored at the root; matching ignores case.
@pytest.mark.parametrize("path,hit", [
    ("conftest.py", True),
    ("tests/conftest.py", True),
    ("a/b/c/conftest.py", True),
    ("CONFTEST.PY", True),
    ("Tests/ConfTest.py", True),
    ("myconftest.py", False),
    ("tests/myconftest.py", False),
    ("conftest.pyc", False),
    ("conftest.py.bak", False),
    ("tests/conftest_utils.py", False),
    (".github/workflows/ci.yml", True),
    (".github/CODEOWNERS", True),
    (".GITHUB/workflows/ci.yml", True),
    (".GitHub/a/b/c/d", True),
    (".githubx/ci.yml", False),
    ("x.github/ci.yml", False),
    ("pyproject.toml", True),
    ("PyProject.TOML", True),
    ("pyproject.toml.orig", False),
    (".errauto.toml", True),
    (".ERRAUTO.TOML", True),
    (".pre-commit-config.yaml", True),
    ("calc.py", False),
    ("tests/test_calc.py", False),
    # the directory itself: a symlink (or file) there decides what .github/** holds
    (".github", True),
    (".GitHub", True),
    # spellings a filesystem folds into a protected name (HFS+ ignorables, NTFS dots/spaces/streams)
    (".git\u200chub/workflows/ci.yml", True),
    (".github./workflows/ci.yml", True),
    (".github /workflows/ci.yml", True),
    ("tests/conftest.py.", True),
    ("tests/conf\u200dtest.py", True),
    ("pyproject.toml::$DATA", True),
    ("\ufeffpyproject.toml", True),
    ("tests", False),
    ("conftest", False),
])
def test_protected_hits_default_patterns(path: str, hit: bool) -> None:
    assert guard.protected_hits([path], DEFAULT_PROTECTED) == ([path] if hit else [])


@pytest.mark.parametrize("pattern,path,hit", [
    ("docs", "docs", True),
    ("docs", "docs/a/b.md", True),  # a directory covers what is below it
    ("docs/", "docs/a.md", True),
    ("docs", "docsx/a.md", False),
    ("/docs", "docs/a.md", True),
    ("*.toml", "x.toml", True),
    ("*.toml", "sub/x.toml", False),  # * stays within a component
    ("**/*.toml", "sub/deep/x.toml", True),
    ("**/*.toml", "x.toml", True),
    ("src/**/secret.py", "src/secret.py", True),
    ("src/**/secret.py", "src/a/b/secret.py", True),
    ("src/**/secret.py", "lib/src/secret.py", False),
    ("src/**", "src/x", True),
    ("src/**", "srcx/y", False),
    ("file?.txt", "file1.txt", True),
    ("file?.txt", "file/.txt", False),
    ("file[0-9].txt", "file7.txt", True),
    ("file[0-9].txt", "filex.txt", False),
    ("file[!0-9].txt", "filex.txt", True),
    ("file[!0-9].txt", "file7.txt", False),
    ("a.b", "aXb", False),  # regex metacharacters are literal
    ("SECRETS/**", "secrets/key", True),
])
def test_protected_hits_glob_semantics(pattern: str, path: str, hit: bool) -> None:
    assert guard.protected_hits([path], [pattern]) == ([path] if hit else [])


def test_protected_hits_keeps_order_and_only_hits() -> None:
    paths = ["calc.py", "tests/conftest.py", ".github/ci.yml", "README"]
    assert guard.protected_hits(paths, DEFAULT_PROTECTED) == ["tests/conftest.py", ".github/ci.yml"]
    assert guard.protected_hits(paths, []) == []


# --------------------------------------------------------------------------
# unit: check_tree on hand-built overlays (the pipeline's applier refuses
# most of these first, so the guard's own answer is checked here)

@pytest.fixture
def tree_repo(tmp_path: Path) -> tuple[pygit2.Repository, pygit2.Tree]:
    r = GitRepo(tmp_path / "trees")
    r.write("calc.py", "x = 1\n")
    r.write("tests/test_x.py", "pass\n")
    os.symlink("/outside", r.path / "abs")
    os.symlink("tests", r.path / "tlink")
    os.symlink("..", r.path / "tests" / "up")
    r.git("add", "-A")
    r.git("update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},vendor/lib")
    r.git("commit", "-q", "-m", "base")
    repo = r.pygit2()
    return repo, repo.head.peel(pygit2.Commit).tree


def _fp(old: str | None, new: str | None, mode: int | None = MODE_FILE,
        old_mode: int | None = None) -> FilePatch:
    return FilePatch(old_path=old, new_path=new, old_mode=old_mode, new_mode=mode)


def _check(tree_repo: tuple[pygit2.Repository, pygit2.Tree],
           changes: dict[str, tuple[int, bytes] | None], files: list[FilePatch]) -> guard.GuardResult:
    repo, tree = tree_repo
    before = Overlay(repo, tree)
    after = Overlay(repo, tree, changes)
    return guard.check_tree(before, after, PatchCommit("t", "", tuple(files)))


@pytest.mark.parametrize("changes,files,needle", [
    pytest.param({"abs/x": (MODE_FILE, b"x")}, [_fp(None, "abs/x")],
                 "beyond a symlink (abs) in the target", id="beyond-base-link"),
    pytest.param({"tlink/x": (MODE_FILE, b"x")}, [_fp(None, "tlink/x")],
                 "beyond a symlink (tlink) in the target", id="beyond-harmless-base-link"),
    pytest.param({"tlink": None, "tlink/x": (MODE_FILE, b"x")},
                 [_fp("tlink", None, None, MODE_LINK), _fp(None, "tlink/x")],
                 "beyond a symlink (tlink) in the target", id="link-replaced-by-directory"),
    pytest.param({"new": (MODE_LINK, b"tests"), "new/x": (MODE_FILE, b"x")},
                 [_fp(None, "new", MODE_LINK), _fp(None, "new/x")],
                 "beyond the symlink new the patch creates", id="beyond-new-link"),
    pytest.param({"new": (MODE_LINK, b"tests"), "new/x": (MODE_FILE, b"x")},
                 [_fp(None, "new", MODE_LINK)],  # another commit of the series named new/x
                 "new/x is beyond the symlink new", id="beyond-new-link-of-the-series"),
    pytest.param({"a": (MODE_LINK, b"/etc")}, [_fp(None, "a", MODE_LINK)], "absolute path", id="absolute"),
    pytest.param({"a": (MODE_LINK, b"../x")}, [_fp(None, "a", MODE_LINK)], "outside the repository",
                 id="dotdot"),
    pytest.param({"a": (MODE_LINK, b".git/hooks")}, [_fp(None, "a", MODE_LINK)], "into .git", id="dotgit"),
    pytest.param({".gitattributes": (MODE_LINK, b"calc.py")}, [_fp(None, ".gitattributes", MODE_LINK)],
                 "may not be a symlink", id="gitattributes"),
    pytest.param({".mailmap": (MODE_LINK, b"calc.py")}, [_fp(None, ".mailmap", MODE_LINK)],
                 "may not be a symlink", id="mailmap"),
    pytest.param({"x/gitign~1": (MODE_LINK, b"../calc.py")}, [_fp(None, "x/gitign~1", MODE_LINK)],
                 "may not be a symlink", id="gitignore-8.3"),
    # physically outside, though each target alone looks fine
    pytest.param({"a": (MODE_LINK, b"tests/up/../x")}, [_fp(None, "a", MODE_LINK)],
                 "outside the repository", id="through-committed-up-link"),
    pytest.param({"a": (MODE_LINK, b"abs/passwd")}, [_fp(None, "a", MODE_LINK)],
                 "through the symlink abs", id="through-committed-absolute-link"),
    pytest.param({"a": (MODE_LINK, b"tlink/up/..")}, [_fp(None, "a", MODE_LINK)],
                 "outside the repository", id="through-two-committed-links"),
    pytest.param({"b": (MODE_LINK, b"."), "a": (MODE_LINK, b"b/b/b/..")},
                 [_fp(None, "b", MODE_LINK), _fp(None, "a", MODE_LINK)],
                 "outside the repository", id="through-new-link-repeatedly"),
])
def test_check_tree_rejects(tree_repo: tuple[pygit2.Repository, pygit2.Tree],
                            changes: dict[str, tuple[int, bytes] | None], files: list[FilePatch],
                            needle: str) -> None:
    with pytest.raises(PatchRejected) as exc:
        _check(tree_repo, changes, files)
    assert needle in exc.value.reason, exc.value.reason


def test_check_tree_rejects_a_change_that_makes_a_committed_link_escape(tmp_path: Path) -> None:
    r = GitRepo(tmp_path / "chain")
    r.write("d/up/keep", "x\n")
    os.symlink("d/up/../../victim", r.path / "data")  # d/up is a directory: data -> victim, inside
    r.write("victim", "v\n")
    r.git("add", "-A")
    r.git("commit", "-q", "-m", "base")
    repo = r.pygit2()
    tree = repo.head.peel(pygit2.Commit).tree
    before = Overlay(repo, tree)
    # d/up becomes a link to the root: now data -> <repo>/../victim
    after = Overlay(repo, tree, {"d/up/keep": None, "d/up": (MODE_LINK, b"..")})
    commit = PatchCommit("t", "", (_fp("d/up/keep", None), _fp(None, "d/up", MODE_LINK)))
    assert guard.symlink_problem("d/up", b"..") is None
    with pytest.raises(PatchRejected) as exc:
        guard.check_tree(before, after, commit)
    assert "data" in exc.value.reason and "outside the repository" in exc.value.reason


@pytest.mark.parametrize("changes,files,review", [
    pytest.param({"calc.py": (MODE_FILE, b"x = 2\n")}, [_fp("calc.py", "calc.py", None)], (), id="plain"),
    # the tree holds abs -> /outside, the user's own: it does not count against the patch
    pytest.param({"alias": (MODE_LINK, b"calc.py")}, [_fp(None, "alias", MODE_LINK)], (), id="link"),
    pytest.param({"tests/alias": (MODE_LINK, b"up/calc.py")}, [_fp(None, "tests/alias", MODE_LINK)], (),
                 id="link-through-committed-link"),
    pytest.param({"loop1": (MODE_LINK, b"loop2"), "loop2": (MODE_LINK, b"loop1")},
                 [_fp(None, "loop1", MODE_LINK), _fp(None, "loop2", MODE_LINK)], (), id="link-loop"),
    pytest.param({"tests/test_x.py": None, "tests/up": None, "tests": (MODE_LINK, b"calc.py")},
                 [_fp("tests/test_x.py", None, None, MODE_FILE), _fp("tests/up", None, None, MODE_LINK),
                  _fp(None, "tests", MODE_LINK)], (), id="directory-replaced-by-link"),
    pytest.param({"vendor/lib": (MODE_GITLINK, b"2" * 40)}, [_fp("vendor/lib", "vendor/lib", None)],
                 ("changes the submodule vendor/lib",), id="submodule-update"),
    pytest.param({"sub": (MODE_GITLINK, b"2" * 40)}, [_fp(None, "sub", MODE_GITLINK)],
                 ("changes the submodule sub",), id="submodule-new"),
    pytest.param({"vendor/lib": None}, [_fp("vendor/lib", None, None, MODE_GITLINK)],
                 ("changes the submodule vendor/lib",), id="submodule-removed"),
    pytest.param({".gitmodules": (MODE_FILE, b"[submodule]\n")}, [_fp(None, ".gitmodules")],
                 ("changes .gitmodules",), id="gitmodules"),
    pytest.param({"a/.GITMODULES": (MODE_FILE, b"x\n")}, [_fp(None, "a/.GITMODULES")],
                 ("changes a/.GITMODULES",), id="gitmodules-nested-upper"),
    pytest.param({"gi7eba~1": (MODE_FILE, b"x\n")}, [_fp(None, "gi7eba~1")],
                 ("changes gi7eba~1",), id="gitmodules-8.3-hashed"),
])
def test_check_tree_allows(tree_repo: tuple[pygit2.Repository, pygit2.Tree],
                           changes: dict[str, tuple[int, bytes] | None], files: list[FilePatch],
                           review: tuple[str, ...]) -> None:
    assert _check(tree_repo, changes, files).review_only == review



@pytest.mark.parametrize("before, after, expected", [
    (b'[project]\nname = "a"\nversion = "1"\n', b'[project]\nname = "a"\nversion = "2"\n', True),
    (b'[project]\nname = "a"\nversion = "1"\n', b'[project]\nname = "b"\nversion = "1"\n', False),
    (b'[project]\nname = "a"\n', b'[project]\nname = "a"\n[tool.errauto]\ntarget = "dev"\n', False),
    (b'[project]\nname = "a"\n', b'[project]\nname = "a"\nscripts = {x = "y:z"}\n', False),
    (b'[project]\nname = "a"\n', b'[project]\nname = "a"\n# a comment\n', True),  # nothing it builds or runs
    (None, b'[project]\nname = "a"\n', False),
    (b'[project]\nname = "a"\n', None, False),
    (b'[project]\nname = "a"\n', b"not toml = = \n", False),
])
def test_descriptive_only(before: bytes | None, after: bytes | None, expected: bool) -> None:
    assert guard.descriptive_only(before, after) is expected
