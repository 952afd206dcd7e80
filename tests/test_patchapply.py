"""errauto's in-memory applier, checked against real git.

The differential tests make hundreds of varied changes, let the real `git
diff` / `git format-patch` / GNU `diff` describe them, apply that description
with errauto and require exactly the tree the change came from. The strictness
tests pin where errauto refuses what git or libgit2 would let through.
"""
from __future__ import annotations

import base64
import functools
import os
import random
import re
import shutil
import subprocess
import time
import zlib
from collections.abc import Mapping
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import ApplyLocation, FileMode

from errauto_daemon.errors import PatchRejected
from errauto_daemon.patchapply import (
    MODE_TREE,
    DoesNotApply,
    Overlay,
    apply_delta,
    apply_hunks,
    apply_patch,
    split_lines,
)
from errauto_daemon.patchfile import (
    MODE_EXEC,
    MODE_FILE,
    MODE_GITLINK,
    MODE_LINK,
    Limits,
    parse,
)
from tests.helpers.gitrepo import GitRepo

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

Files = dict[str, tuple[int, bytes]]  # path -> (mode, content); a gitlink's content is its hex id


def run(cwd: Path, *args: str, input: bytes | None = None, ok: tuple[int, ...] = (0,)) -> bytes:
    proc = subprocess.run(args, cwd=cwd, input=input, capture_output=True)
    assert proc.returncode in ok, (args, proc.stderr.decode(errors="replace"))
    return proc.stdout


_OBJECTS: dict[tuple[str, object], pygit2.Oid] = {}  # (repository, content) -> id: writing is slow


def make_tree(repo: pygit2.Repository, files: Files) -> pygit2.Oid:
    key = (repo.path, tuple(sorted(files.items())))
    if key not in _OBJECTS:
        index = pygit2.Index()
        for path, (mode, data) in files.items():
            if mode == MODE_GITLINK:
                oid = pygit2.Oid(hex=data.decode())
            else:
                oid = _OBJECTS.get((repo.path, data)) or repo.create_blob(data)
                _OBJECTS[(repo.path, data)] = oid
            index.add(pygit2.IndexEntry(path, oid, FileMode(mode)))
        _OBJECTS[key] = index.write_tree(repo)
    return _OBJECTS[key]


def errauto_apply(repo: pygit2.Repository, base: pygit2.Oid | str, data: bytes, *,
                  limits: Limits = Limits(), target: str = "the target") -> list[str]:
    """Parse and apply like validate does; the tree id after each commit."""
    tree = repo[base].peel(pygit2.Tree)
    patch = parse(data, "change.patch", limits=limits, exists=lambda p: p in tree)
    overlays, _ = apply_patch(repo, tree, patch, target=target)
    return [str(o.write_tree()) for o in overlays]


def refusal(repo: pygit2.Repository, base: pygit2.Oid | str, data: bytes, **kwargs: object) -> str:
    with pytest.raises(PatchRejected) as info:
        errauto_apply(repo, base, data, **kwargs)  # type: ignore[arg-type]
    return info.value.reason


@pytest.fixture(scope="module")
def object_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One repository for the module's objects: they are content-addressed, so
    tests cannot disturb each other, and the random trees share most blobs."""
    path = tmp_path_factory.mktemp("objects") / "repo"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(path.parent),
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(("git", "init", "-q", str(path)), env=env, check=True, capture_output=True)
    return path


@pytest.fixture
def odb(object_repo: Path) -> pygit2.Repository:
    """A repository to hold objects; git commands run in it too."""
    return pygit2.Repository(str(object_repo))


def git_diff(repo: pygit2.Repository, a: pygit2.Oid, b: pygit2.Oid, *args: str) -> bytes:
    return run(Path(repo.path), "git", "diff", "--binary", *args, str(a), str(b))


# --------------------------------------------------------------------------
# differential: random changes, described by real git, applied by errauto

VOCAB = ["", "", "pass", "return x", "x = 1", "def f():", "    pass", "}", "{", "# comment",
         "import os", "    return None", "end", "\tindented"]


class World:
    """A random tree and random changes to it."""

    def __init__(self, rng: random.Random, serial: int = 0) -> None:
        self.rng = rng
        self.serial = serial

    def line(self, crlf: bool = False) -> bytes:
        rng = self.rng
        text = rng.choice(VOCAB) if rng.random() < 0.35 else f"v{rng.randrange(500)} = {rng.randrange(99)}"
        if rng.random() < 0.03:
            text += " naïve ünïcode"
        return text.encode() + (b"\r\n" if crlf else b"\n")

    def text(self, n: int | None = None, crlf: bool = False) -> bytes:
        n = self.rng.randrange(1, 60) if n is None else n
        data = b"".join(self.line(crlf) for _ in range(n))
        if data and self.rng.random() < 0.15:
            data = data.rstrip(b"\r\n")  # no newline at end of file
        return data

    def binary(self, size: int | None = None) -> bytes:
        size = self.rng.randrange(1, 3000) if size is None else size
        return b"\0" + self.rng.randbytes(size)

    def name(self, ext: str = ".txt") -> str:
        self.serial += 1
        rng = self.rng
        stem = rng.choice(["mod", "file", "read me", "ünï", "tab\tname", "q\"uote", "data"])
        folder = rng.choice(["", "", "src/", "src/pkg/", "docs/", "new dir/", "deep/a/b/c/"])
        return f"{folder}{stem}{self.serial}{ext}"

    def base(self) -> Files:
        files: Files = {}
        for _ in range(self.rng.randrange(3, 8)):
            files[self.name(".py")] = (MODE_FILE, self.text())
        files["tools/run.sh"] = (MODE_EXEC, b"#!/bin/sh\n" + self.text(8))
        files["win.txt"] = (MODE_FILE, self.text(12, crlf=True))
        files["empty.txt"] = (MODE_FILE, b"")
        files["link"] = (MODE_LINK, b"src/target.py")
        files["img.bin"] = (MODE_FILE, self.binary(200))
        files["big.bin"] = (MODE_FILE, self.binary(20_000))
        files["pkg/sub/inner.py"] = (MODE_FILE, self.text(10))
        files["pkg/other.py"] = (MODE_FILE, self.text(10))
        return files

    def edit_text(self, data: bytes) -> bytes:
        rng = self.rng
        crlf = b"\r\n" in data
        lines = split_lines(data)
        for _ in range(rng.randrange(1, 4)):
            where = rng.choice(["start", "middle", "end"])
            at = {"start": 0, "middle": len(lines) // 2, "end": len(lines)}[where]
            at = max(0, min(len(lines), at + rng.randrange(-2, 3)))
            op = rng.choice(["insert", "delete", "replace"])
            k = rng.randrange(1, 5)
            if op == "insert" or not lines:
                new = [self.line(crlf) for _ in range(k)]
                lines[at:at] = new
            elif op == "delete":
                del lines[at:at + k]
            else:
                lines[at:at + k] = [self.line(crlf) for _ in range(rng.randrange(0, 4))]
        # Only the last line may lack its newline.
        fixed = [l if l.endswith(b"\n") else l + (b"\r\n" if crlf else b"\n") for l in lines[:-1]]
        out = b"".join(fixed + lines[-1:])
        if out and rng.random() < 0.15:
            out = out.rstrip(b"\r\n") if out.endswith(b"\n") else out + b"\n"
        return out

    def change(self, files: Files, *, text_only: bool = False) -> Files:
        """A copy of `files` with one to four random changes."""
        rng = self.rng
        new = dict(files)
        touched: set[str] = set()

        def free(kind: str | None = None) -> list[str]:
            out = []
            for p, (mode, data) in sorted(new.items()):
                if p in touched or any(p.startswith(t + "/") or t.startswith(p + "/") for t in touched):
                    continue
                is_bin = b"\0" in data
                if kind == "text" and (mode not in (MODE_FILE, MODE_EXEC) or is_bin):
                    continue
                if kind == "bin" and not is_bin:
                    continue
                if kind == "link" and mode != MODE_LINK:
                    continue
                if kind == "regular" and mode not in (MODE_FILE, MODE_EXEC):
                    continue
                out.append(p)
            return out

        ops = ["edit"] * 6 + ["add", "add", "delete", "rename", "copy", "chmod", "binary", "relink",
                              "typechange", "dir2file", "file2dir"]
        if text_only:  # what plain diff -N can say
            ops = ["edit"] * 6 + ["add", "delete", "rename", "copy"]
        for _ in range(rng.randrange(1, 5)):
            op = rng.choice(ops)
            if op == "edit" and (cands := free("text")):
                p = rng.choice(cands)
                mode, data = new[p]
                new[p] = (mode, self.edit_text(data))
                touched.add(p)
            elif op == "add":
                p = self.name(rng.choice([".py", ".txt", ".bin", ""]))
                kind = rng.choice(["text", "text", "binary", "empty", "link", "exec"])
                new[p] = {
                    "text": (MODE_FILE, self.text()),
                    "binary": (MODE_FILE, self.binary()),
                    "empty": (MODE_FILE, b""),
                    "link": (MODE_LINK, b"../" + self.name().encode()),
                    "exec": (MODE_EXEC, b"#!/bin/sh\n" + self.text(5)),
                }[kind]
                touched.add(p)
            elif op == "delete" and (cands := free()):
                p = rng.choice(cands)
                del new[p]
                touched.add(p)
            elif op in ("rename", "copy") and (cands := free("text")):
                p = rng.choice(cands)
                mode, data = new[p]
                if len(split_lines(data)) < 8:
                    continue
                q = self.name(".py")
                if rng.random() < 0.5:
                    lines = split_lines(data)
                    i = rng.randrange(len(lines) - 1)
                    lines[i] = self.line(b"\r\n" in data)
                    data = b"".join(lines)
                new[q] = (mode, data)
                if op == "rename":
                    del new[p]
                touched.update((p, q))
            elif op == "chmod" and (cands := free("regular")):
                p = rng.choice(cands)
                mode, data = new[p]
                new[p] = (MODE_EXEC if mode == MODE_FILE else MODE_FILE, data)
                touched.add(p)
            elif op == "binary" and (cands := free("bin")):
                p = rng.choice(cands)
                mode, data = new[p]
                if rng.random() < 0.7:  # a small change: git writes a delta
                    i = rng.randrange(len(data))
                    data = data[:i] + self.rng.randbytes(rng.randrange(1, 20)) + data[i + 1:]
                else:
                    data = self.binary()
                new[p] = (mode, data)
                touched.add(p)
            elif op == "relink" and (cands := free("link")):
                p = rng.choice(cands)
                new[p] = (MODE_LINK, self.name().encode())
                touched.add(p)
            elif op == "typechange" and (cands := free("text") + free("link")):
                p = rng.choice(cands)
                mode, data = new[p]
                new[p] = (MODE_FILE, self.text()) if mode == MODE_LINK else (MODE_LINK, b"elsewhere")
                touched.add(p)
            elif op == "dir2file" and "pkg/sub/inner.py" in free():
                del new["pkg/sub/inner.py"]
                new["pkg/sub"] = (MODE_FILE, self.text(3))
                touched.update(("pkg/sub", "pkg/sub/inner.py"))
            elif op == "file2dir" and (cands := free("regular")):
                p = rng.choice(cands)
                mode, data = new.pop(p)
                new[p + "/inside.py"] = (mode, data if rng.random() < 0.5 else self.text())
                touched.update((p, p + "/inside.py"))
        if new == files:
            new[self.name()] = (MODE_FILE, self.text())
        return new

    def diff_options(self) -> list[str]:
        rng = self.rng
        opts = [rng.choice(["--no-renames", "-M", "-M", "-C", "-C -C", "-B", "-B -M", "-B -C -C"])]
        opts.append(rng.choice(["", "", "-U0", "-U1", "-U5", "-U10"]))
        opts.append(rng.choice(["", "", "--patience", "--histogram", "--minimal"]))
        opts.append(rng.choice(["", "", "--full-index"]))
        opts.append(rng.choice(["", "", "--src-prefix=old/ --dst-prefix=new/"]))
        return " ".join(opts).split()


def git_apply_tree(repo: pygit2.Repository, base: pygit2.Oid, data: bytes, tmp_path: Path,
                   *opts: str) -> str:
    """What real `git apply --cached` makes of `data` on `base`."""
    cwd = Path(repo.workdir)
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp_path / "apply-index")}
    for args, stdin in ((("read-tree", str(base)), None), (("apply", "--cached", *opts), data),
                        (("write-tree",), None)):
        proc = subprocess.run(("git", *args), cwd=cwd, env=env, input=stdin, capture_output=True)
        assert proc.returncode == 0, (args, proc.stderr.decode(errors="replace"))
    return proc.stdout.decode().strip()


@functools.cache
def random_base(number: int) -> Files:
    return World(random.Random(f"base {number}")).base()


def random_case(seed: int) -> tuple[World, Files, Files]:
    """Six cases share each base tree; names made by the change never clash with it."""
    world = World(random.Random(seed), serial=1000)
    base_files = random_base(seed // 6)
    return world, base_files, world.change(base_files)


@pytest.mark.parametrize("seed", range(240))
def test_differential_git_diff(odb: pygit2.Repository, tmp_path: Path, seed: int) -> None:
    world, base_files, new_files = random_case(seed)
    base, want = make_tree(odb, base_files), make_tree(odb, new_files)
    opts = world.diff_options()
    quotepath = ["-c", f"core.quotepath={'true' if seed % 2 else 'false'}"]
    data = run(Path(odb.path), "git", *quotepath, "diff", "--binary", *opts, str(base), str(want))

    assert errauto_apply(odb, base, data) == [str(want)], data.decode(errors="replace")

    if seed % 8 == 0:  # the patch is one real git accepts, with the same result
        zero = ["--unidiff-zero"] if "-U0" in opts else []
        assert git_apply_tree(odb, base, data, tmp_path, *zero) == str(want)


@pytest.mark.parametrize("seed", range(240))
def test_differential_reapplying_is_refused(odb: pygit2.Repository, seed: int) -> None:
    """The same changes, applied to the tree they produced, are never applied twice."""
    world, base_files, new_files = random_case(seed)
    base, want = make_tree(odb, base_files), make_tree(odb, new_files)
    data = git_diff(odb, base, want, *world.diff_options())

    reason = refusal(odb, want, data)

    if any(fp.is_copy for fp in parse(data).files()):
        # A copy cannot be undone, so it is not recognised as applied; it
        # still does not apply, as its destination exists.
        assert reason == "already applied on the target" or reason.startswith(
            "does not apply on the target: "), reason
    else:
        # A change of mode only is no change at all the second time.
        assert reason in ("already applied on the target",
                          "changes nothing on the target (already applied?)"), reason


@pytest.mark.parametrize("seed", range(30))
def test_differential_format_patch_series(odb: pygit2.Repository, seed: int) -> None:
    rng = random.Random(1000 + seed)
    world = World(rng)
    files = world.base()
    sig = pygit2.Signature("Series Author", "series@example.org", 1700000000 + seed, 60)
    base = odb.create_commit(None, sig, sig, "base", make_tree(odb, files), [])
    commits, trees, parent = [], [], base
    for i in range(rng.randrange(2, 5)):
        files = world.change(files)
        tree = make_tree(odb, files)
        parent = odb.create_commit(None, sig, sig, f"step {i}: change things\n\nbody {i}\n", tree, [parent])
        commits.append(parent)
        trees.append(str(tree))
    opts = [rng.choice(["--no-renames", "-M", "-C"])]
    data = run(Path(odb.path), "git", "format-patch", "--stdout", "--binary", *opts, f"{base}..{parent}")

    patch = parse(data, "series.mbox")
    assert [c.title for c in patch.commits] == [f"step {i}: change things" for i in range(len(commits))]
    assert all(c.author_name == "Series Author" for c in patch.commits)
    assert errauto_apply(odb, odb[base].peel(pygit2.Commit).tree_id, data) == trees


@pytest.mark.parametrize("seed", range(40))
def test_differential_gnu_diff_ruN(odb: pygit2.Repository, tmp_path: Path, seed: int) -> None:
    """Plain `diff -ruN a b` carries text changes only: no modes, links or binaries."""
    world = World(random.Random(5000 + seed))
    full = world.base()
    base_files = {p: v for p, v in full.items() if v[0] == MODE_FILE and b"\0" not in v[1] and v[1]}
    new_files: Files = {}
    for p, (mode, data) in world.change(base_files, text_only=True).items():
        if mode == MODE_LINK:
            continue
        if b"\0" in data or not data:
            continue
        new_files[p] = (MODE_FILE, data)
    if new_files == base_files:
        new_files["extra.txt"] = (MODE_FILE, b"extra\n")
    for side, files in (("a", base_files), ("b", new_files)):
        for p, (_, data) in files.items():
            path = tmp_path / side / p
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    (tmp_path / "a").mkdir(exist_ok=True)
    (tmp_path / "b").mkdir(exist_ok=True)
    tz = random.Random(seed).choice(["UTC", "EST5EDT", "IST-5:30", "<-11>11"])
    proc = subprocess.run(("diff", "-ruN", "a", "b"), cwd=tmp_path, capture_output=True,
                          env={**os.environ, "TZ": tz})
    assert proc.returncode in (0, 1), proc.stderr
    base, want = make_tree(odb, base_files), make_tree(odb, new_files)

    assert errauto_apply(odb, base, proc.stdout) == [str(want)], proc.stdout.decode(errors="replace")


# --------------------------------------------------------------------------
# strictness: context, position, order

LINES = "".join(f"line {i}\n" for i in range(1, 41))


@pytest.fixture
def proj(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "proj")
    repo.commit("base", {"f.py": LINES, "g.py": "g1\ng2\ng3\n"})
    return repo


def commit_change(repo: GitRepo, edits: Mapping[str, str | bytes | None], message: str = "change") -> str:
    repo.edit(edits)
    repo.git("commit", "-q", "-m", message)
    return repo.git("rev-parse", "HEAD^{tree}").strip()


def tree_of(repo: GitRepo, rev: str = "HEAD") -> str:
    return repo.git("rev-parse", f"{rev}^{{tree}}").strip()


def blob(repo: pygit2.Repository, tree_id: str, path: str) -> bytes:
    return repo[tree_id][path].read_raw()  # type: ignore[index]


def libgit2_accepts(repo: GitRepo, data: bytes) -> bool:
    """Whether libgit2 (through pygit2) would apply `data` to the index."""
    return repo.pygit2().applies(pygit2.Diff.parse_diff(data), ApplyLocation.INDEX)


def git_accepts(repo: GitRepo, data: bytes, *args: str) -> bool:
    proc = subprocess.run(("git", "apply", "--check", "--cached", *args), cwd=repo.path, input=data,
                          capture_output=True)
    return proc.returncode == 0


def without_index_line(data: bytes) -> bytes:
    return re.sub(rb"(?m)^index [0-9a-f]+\.\.[0-9a-f]+( \d+)?\n", b"", data)


@pytest.mark.parametrize("full_index", [False, True])
def test_context_free_addition_needs_the_index_line(proj: GitRepo, full_index: bool) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": LINES.replace("line 20\n", "line 20\nadded\n")})
    proj.git("reset", "-q", "--hard", "HEAD~1")
    data = proj.diff("-U0", *(["--full-index"] if full_index else []), base, want)
    assert re.search(rb"\n@@ -20,0 \+21 @@[^\n]*\n\+added\n", data)
    bare = without_index_line(data)
    repo = proj.pygit2()

    assert libgit2_accepts(proj, bare) and git_accepts(proj, bare)  # the lenient view
    assert errauto_apply(repo, base, data) == [want]
    reason = refusal(repo, base, bare)
    assert reason == ("does not apply on the target: hunk 1 of f.py (patch line 4) has no context lines, "
                      "so where it belongs cannot be checked; make the patch with context (git diff -U3)")


def test_context_free_hunk_on_a_changed_file_is_refused(proj: GitRepo) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": LINES.replace("line 20\n", "line 20\nadded\n")})
    data = proj.diff("-U0", base, want)
    proj.git("reset", "-q", "--hard", "HEAD~1")
    moved = commit_change(proj, {"f.py": "new first line\n" + LINES})
    repo = proj.pygit2()

    assert "hunk 1 of f.py (patch line 5) has no context lines" in refusal(repo, moved, data)


def test_context_free_hunks_replacing_the_whole_file_need_no_index(proj: GitRepo) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"g.py": "other\n"})
    data = without_index_line(proj.diff("-U0", base, want))
    assert b"@@ -1,3 +1 @@" in data

    assert errauto_apply(proj.pygit2(), base, data) == [want]


def test_unidiff_zero_change_in_the_middle_applies_with_its_index(proj: GitRepo) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": LINES.replace("line 1\n", "one\n").replace("line 30\n", "")
                                + "tail\n"})
    data = proj.diff("-U0", base, want)

    assert errauto_apply(proj.pygit2(), base, data) == [want]


def test_reapplying_is_rejected_as_already_applied(proj: GitRepo) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": LINES.replace("line 10\n", "ten\n"), "g.py": None,
                                "new.py": "new\n"})
    data = proj.diff(base, want)
    repo = proj.pygit2()

    assert errauto_apply(repo, base, data) == [want]
    assert refusal(repo, want, data, target="main") == "already applied on main"


def test_reapplying_one_commit_of_a_series(proj: GitRepo) -> None:
    base = proj.head()
    commit_change(proj, {"f.py": LINES.replace("line 10\n", "ten\n")}, "first")
    commit_change(proj, {"g.py": "g1\nG2\ng3\n"}, "second")
    data = run(proj.path, "git", "format-patch", "--stdout", f"{base}..HEAD")
    proj.git("reset", "-q", "--hard", base)
    only_second = commit_change(proj, {"g.py": "g1\nG2\ng3\n"}, "second, alone")

    reason = refusal(proj.pygit2(), only_second, data, target="main")
    assert reason == "commit 2 (second): already applied on main"


def test_mode_change_already_made_changes_nothing(proj: GitRepo) -> None:
    base = tree_of(proj)
    proj.write("g.py", "g1\ng2\ng3\n", mode=0o755)
    want = commit_change(proj, {})
    data = proj.diff(base, want)
    assert b"new mode 100755" in data

    assert errauto_apply(proj.pygit2(), base, data) == [want]
    assert refusal(proj.pygit2(), want, data) == "changes nothing on the target (already applied?)"


def test_context_that_no_longer_matches_is_named(proj: GitRepo) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": LINES.replace("line 5\n", "five\n").replace("line 30\n", "thirty\n")})
    data = proj.diff(base, want)
    proj.git("reset", "-q", "--hard", "HEAD~1")
    moved = commit_change(proj, {"f.py": LINES.replace("line 31\n", "someone else's edit\n")})
    line = next(i for i, l in enumerate(data.split(b"\n"), 1) if l.startswith(b"@@ -27,7 +27,7 @@"))

    reason = refusal(proj.pygit2(), moved, data, target="main")

    assert reason == f"does not apply on main: hunk 2 of f.py (patch line {line}) does not match"
    assert not git_accepts(proj, data)


def test_hunk_at_a_shifted_offset_is_applied_like_git(proj: GitRepo, tmp_path: Path) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": LINES.replace("line 12\n", "twelve\n").replace("line 33\n", "")})
    data = proj.diff(base, want)
    proj.git("reset", "-q", "--hard", "HEAD~1")
    shifted = commit_change(proj, {"f.py": "header 1\nheader 2\n" + LINES.replace("line 20\n", "")})
    repo = proj.pygit2()

    (tree,) = errauto_apply(repo, shifted, data)

    expected = ("header 1\nheader 2\n" + LINES.replace("line 20\n", "").replace("line 12\n", "twelve\n")
                .replace("line 33\n", "")).encode()
    assert blob(repo, tree, "f.py") == expected
    proj.git("apply", "--index", input=data)
    assert proj.git("write-tree").strip() == tree


def test_offset_search_prefers_the_nearest_match(proj: GitRepo) -> None:
    block = "a\nb\nc\nd\ne\nf\ng\n"
    proj.write("rep.txt", block * 4)
    commit_change(proj, {})
    base = tree_of(proj)
    want = commit_change(proj, {"rep.txt": block * 2 + block.replace("d\n", "D\n") + block})
    data = proj.diff(base, want)
    assert b"@@ -15,7 +15,7 @@" in data
    proj.git("reset", "-q", "--hard", "HEAD~1")
    # Two lines fewer at the top: the hunk's seven lines now match 2 lines
    # before where it says (line 13) and 5 after (line 20); git takes the nearer.
    target_lines = split_lines((block * 4)[4:].encode())
    target = commit_change(proj, {"rep.txt": b"".join(target_lines)})
    repo = proj.pygit2()

    (tree,) = errauto_apply(repo, target, data)

    target_lines[12 + 3] = b"D\n"
    assert blob(repo, tree, "rep.txt") == b"".join(target_lines)
    proj.git("apply", "--index", input=data)
    assert proj.git("write-tree").strip() == tree


def test_hunks_out_of_order_are_refused(proj: GitRepo) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": LINES.replace("line 5\n", "five\n").replace("line 30\n", "thirty\n")})
    data = proj.diff(base, want)
    proj.git("reset", "-q", "--hard", "HEAD~1")
    head, first, second = re.split(rb"(?m)^(?=@@ )", data)
    swapped = head + second + first

    assert libgit2_accepts(proj, swapped) and git_accepts(proj, swapped)
    reason = refusal(proj.pygit2(), base, swapped)
    assert reason.startswith("does not apply on the target: hunk 2 of f.py") and reason.endswith("does not match")


def test_overlapping_hunks_are_refused(proj: GitRepo) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": LINES.replace("line 5\n", "five\n")})
    data = proj.diff(base, want)
    head, hunk = re.split(rb"(?m)^(?=@@ )", data)
    twice = head + hunk + hunk.replace(b"@@ -2,7 +2,7 @@", b"@@ -3,7 +3,7 @@")

    assert "hunk 2 of f.py" in refusal(proj.pygit2(), base, twice)


def test_hunk_at_line_one_must_match_the_beginning(proj: GitRepo) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": "first\n" + LINES})
    data = proj.diff(base, want)
    assert b"@@ -1,3 +1,4 @@\n+first\n" in data
    proj.git("reset", "-q", "--hard", "HEAD~1")
    # line 1..3 still exist, but no longer at the beginning
    target = commit_change(proj, {"f.py": "intro\n" + LINES})

    assert "hunk 1 of f.py" in refusal(proj.pygit2(), target, data)
    assert not git_accepts(proj, data)


def test_hunk_without_trailing_context_must_match_the_end(proj: GitRepo) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": LINES + "last\n"})
    data = proj.diff(base, want)
    proj.git("reset", "-q", "--hard", "HEAD~1")
    target = commit_change(proj, {"f.py": LINES + "outro\n"})

    assert "hunk 1 of f.py" in refusal(proj.pygit2(), target, data)
    assert not git_accepts(proj, data)


def test_changed_file_whose_context_still_matches_is_noted(proj: GitRepo) -> None:
    base = proj.head()
    commit_change(proj, {"f.py": LINES.replace("line 5\n", "five\n")})
    data = proj.diff(base, "HEAD")
    proj.git("reset", "-q", "--hard", base)
    commit_change(proj, {"f.py": LINES.replace("line 35\n", "35\n")})
    repo = proj.pygit2()
    patch = parse(data)

    overlays, notes = apply_patch(repo, repo[tree_of(proj)], patch)  # type: ignore[arg-type]

    old_id = patch.files()[0].old_id
    now = proj.git("rev-parse", "HEAD:f.py").strip()
    assert notes == [f"f.py changed since the patch was made (index {old_id}, target has {now[:12]})"]
    assert overlays[0].read("f.py") == LINES.replace("line 5\n", "five\n").replace("line 35\n", "35\n").encode()


# --------------------------------------------------------------------------
# files: existence, kinds, renames, copies, directories

def test_file_level_refusals(proj: GitRepo) -> None:
    repo = proj.pygit2()
    base = tree_of(proj)
    new_file = proj.make_patch({"h.py": "h\n"})
    edit_g = proj.make_patch({"g.py": "g1\nG2\ng3\n"})
    rename_g = proj.make_patch({"g.py": None, "moved.py": "g1\ng2\ng3\n"})
    nested = proj.make_patch({"dir/inner.py": "x\n"}).replace(b"dir/inner.py", b"f.py/inner.py")
    other = commit_change(proj, {"h.py": "something else\n", "g.py": None, "moved.py": "taken\n"})

    assert refusal(repo, other, new_file) == "does not apply on the target: h.py already exists"
    assert refusal(repo, other, edit_g) == "does not apply on the target: g.py does not exist"
    assert refusal(repo, base, nested) == "does not apply on the target: cannot create f.py/inner.py: f.py is a file"
    proj.git("reset", "-q", "--hard", "HEAD~1")
    taken = commit_change(proj, {"moved.py": "taken\n"})
    assert refusal(repo, taken, rename_g) == "does not apply on the target: moved.py already exists"


def test_patch_for_a_file_finds_a_symlink(proj: GitRepo) -> None:
    data = proj.make_patch({"g.py": "g1\nG2\ng3\n"})
    (proj.path / "g.py").unlink()
    (proj.path / "g.py").symlink_to("f.py")
    target = commit_change(proj, {})

    reason = refusal(proj.pygit2(), target, data)
    assert reason == "does not apply on the target: g.py is a symlink, the patch expects a file"


def test_patch_for_a_file_finds_a_directory(proj: GitRepo) -> None:
    data = proj.make_patch({"g.py": "g1\nG2\ng3\n"})
    (proj.path / "g.py").unlink()
    target = commit_change(proj, {"g.py/x": "x\n"})

    assert refusal(proj.pygit2(), target, data) == "does not apply on the target: g.py is a directory"


def test_deleting_an_empty_file_that_is_not_empty(proj: GitRepo) -> None:
    proj.write("empty", "")
    commit_change(proj, {})
    data = proj.make_patch({"empty": None})
    assert b"@@" not in data
    target = commit_change(proj, {"empty": "content now\n"})

    assert refusal(proj.pygit2(), target, data) == \
        "does not apply on the target: deleting empty would leave content behind"


def test_copy_reads_its_source_before_the_source_changes(proj: GitRepo) -> None:
    """`git diff -C -C` of 'edit f.py, and copy the old f.py': the copy is of the old one."""
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": LINES.replace("line 5\n", "five\n"),
                                "z copy.py": LINES, "zz edited.py": LINES.replace("line 9\n", "nine\n")})
    data = proj.diff("-C", "-C", base, want)
    assert data.index(b"diff --git a/f.py b/f.py") < data.index(b"copy to z copy.py")
    assert b"copy to zz edited.py" in data

    assert errauto_apply(proj.pygit2(), base, data) == [want]


def test_rename_and_copy_of_one_file(proj: GitRepo) -> None:
    base = tree_of(proj)
    want = commit_change(proj, {"f.py": None, "a_copy.py": LINES, "z_renamed.py": LINES.replace("line 2\n", "")})
    data = proj.diff("-C", "-C", base, want)
    assert b"copy from f.py" in data and b"rename from f.py" in data

    assert errauto_apply(proj.pygit2(), base, data) == [want]


@pytest.mark.parametrize("order", ["file first", "dir first"])
def test_directory_replaced_by_a_file_and_back(proj: GitRepo, order: str) -> None:
    proj.write("x/inner.py", "inner\n")
    proj.write("x/deeper/more.py", "more\n")
    base = commit_change(proj, {})
    shutil.rmtree(proj.path / "x")
    want = commit_change(proj, {"x": "now a file\n", "g.py": None, "g.py/inside": "now a dir\n"})
    data = proj.diff(base, want)
    if order == "dir first":  # the deletions before the creation, as some tools write it
        parts = re.split(rb"(?m)^(?=diff --git )", data)[1:]
        parts.sort(key=lambda p: b"deleted file mode" not in p)
        data = b"".join(parts)
    repo = proj.pygit2()

    assert errauto_apply(repo, base, data) == [want]
    assert refusal(repo, want, data) == "already applied on the target"


def test_file_renamed_into_a_directory_of_its_own_name(proj: GitRepo) -> None:
    base = tree_of(proj)
    (proj.path / "f.py").rename(proj.path / "tmp")
    (proj.path / "f.py").mkdir()
    (proj.path / "tmp").rename(proj.path / "f.py/inside.py")
    want = commit_change(proj, {})
    data = proj.diff("-M", base, want)
    assert b"rename from f.py\nrename to f.py/inside.py" in data
    repo = proj.pygit2()

    assert errauto_apply(repo, base, data) == [want]
    assert refusal(repo, want, data) == "already applied on the target"


def test_rewrite_and_copy_of_its_old_content(proj: GitRepo) -> None:
    """`git diff -B -M`: a.txt is rewritten, and its old content lives on in b.txt."""
    old = "".join(f"alpha line {i}\n" for i in range(60))  # -B ignores files under 400 bytes
    base = commit_change(proj, {"a.txt": old})
    want = commit_change(proj, {"a.txt": "".join(f"new {i}\n" for i in range(60)), "b.txt": old})
    data = proj.diff("-B", "-M", base, want)
    assert b"dissimilarity index 100%" in data and b"copy from a.txt\ncopy to b.txt" in data
    assert data.index(b"dissimilarity") < data.index(b"copy from")

    assert errauto_apply(proj.pygit2(), base, data) == [want]


def test_latin1_content_in_a_mail(proj: GitRepo) -> None:
    proj.write("legacy.txt", b"caf\xe9 = 1\nna\xefve\n")
    base = commit_change(proj, {})
    base_commit = proj.head()
    want = commit_change(proj, {"legacy.txt": b"caf\xe9 = 2\nna\xefve\n"}, "legacy: bump")
    data = run(proj.path, "git", "format-patch", "--stdout", f"{base_commit}..HEAD")
    assert b"+caf\xe9 = 2" in data

    assert errauto_apply(proj.pygit2(), base, data) == [want]


@pytest.mark.parametrize("direction", ["file to symlink", "symlink to file"])
def test_type_change_between_file_and_symlink(proj: GitRepo, direction: str) -> None:
    if direction == "symlink to file":
        (proj.path / "g.py").unlink()
        (proj.path / "g.py").symlink_to("f.py")
        commit_change(proj, {})
    base = tree_of(proj)
    (proj.path / "g.py").unlink()
    if direction == "file to symlink":
        (proj.path / "g.py").symlink_to("f.py")
    else:
        proj.write("g.py", "a file again\n")
    want = commit_change(proj, {})
    data = proj.diff(base, want)
    assert data.count(b"diff --git a/g.py b/g.py") == 2

    assert errauto_apply(proj.pygit2(), base, data) == [want]


def test_submodule_update_and_addition(odb: pygit2.Repository) -> None:
    base = make_tree(odb, {"f": (MODE_FILE, b"f\n"), "sub": (MODE_GITLINK, b"1" * 40),
                           "gone": (MODE_GITLINK, b"4" * 40)})
    want = make_tree(odb, {"f": (MODE_FILE, b"f\n"), "sub": (MODE_GITLINK, b"2" * 40),
                           "new": (MODE_GITLINK, b"3" * 40)})
    data = git_diff(odb, base, want)
    assert b"+Subproject commit 2222222222222222222222222222222222222222" in data

    assert errauto_apply(odb, base, data) == [str(want)]
    assert refusal(odb, want, data) == "already applied on the target"


def test_symlink_retarget(proj: GitRepo) -> None:
    (proj.path / "link").symlink_to("f.py")
    base = commit_change(proj, {})
    (proj.path / "link").unlink()
    (proj.path / "link").symlink_to("g.py")
    want = commit_change(proj, {})
    data = proj.diff(base, want)
    repo = proj.pygit2()

    (tree,) = errauto_apply(repo, base, data)
    assert tree == want and blob(repo, tree, "link") == b"g.py"
    assert repo[tree]["link"].filemode == MODE_LINK  # type: ignore[index]


# --------------------------------------------------------------------------
# binary patches

BIG = bytes(random.Random(7).randbytes(100_000))


def _binary_change(proj: GitRepo, before: bytes, after: bytes) -> tuple[str, str, bytes]:
    proj.write("data.bin", before)
    base = commit_change(proj, {})
    want = commit_change(proj, {"data.bin": after})
    return base, want, proj.diff("--binary", base, want)


def test_delta_binary_patch_applies(proj: GitRepo) -> None:
    after = BIG[:50_000] + b"small change" + BIG[50_012:]
    base, want, data = _binary_change(proj, BIG, after)
    fp = parse(data).files()[0]
    assert fp.binary is not None and fp.binary[0].kind == "delta"
    assert len(data) < 2_000
    repo = proj.pygit2()

    (tree,) = errauto_apply(repo, base, data)

    assert tree == want and blob(repo, tree, "data.bin") == after
    assert refusal(repo, want, data) == "already applied on the target"


def test_literal_binary_patch_applies_and_deletes(proj: GitRepo) -> None:
    base, want, data = _binary_change(proj, b"\0small", b"\0other and longer")
    repo = proj.pygit2()
    assert errauto_apply(repo, base, data) == [want]

    gone = commit_change(proj, {"data.bin": None})
    deletion = proj.diff("--binary", want, gone)
    assert b"deleted file mode" in deletion and b"GIT binary patch" in deletion
    assert errauto_apply(repo, want, deletion) == [gone]


def test_binary_patch_against_a_different_preimage_is_refused(proj: GitRepo) -> None:
    base, want, data = _binary_change(proj, BIG, BIG[:10] + b"x" + BIG[11:])
    other = commit_change(proj, {"data.bin": BIG[:20] + b"y" + BIG[21:]})

    reason = refusal(proj.pygit2(), other, data)
    assert reason == "does not apply on the target: data.bin is not the version the binary patch was made against"


def test_binary_patch_with_an_abbreviated_index_is_refused(proj: GitRepo) -> None:
    base, want, data = _binary_change(proj, b"\0one", b"\0two")
    short = re.sub(rb"(?m)^index ([0-9a-f]{7})[0-9a-f]{33}\.\.([0-9a-f]{7})[0-9a-f]{33}",
                   rb"index \1..\2", data)
    assert short != data

    reason = refusal(proj.pygit2(), base, short)
    assert reason == ("does not apply on the target: binary patch for data.bin lacks the full index; "
                      "make it with `git diff --binary`")


def test_binary_patch_must_produce_what_its_index_names(proj: GitRepo) -> None:
    base, want, data = _binary_change(proj, b"\0one", b"\0two")
    blob_two = proj.git("rev-parse", f"{want}:data.bin").strip()
    lie = data.replace(blob_two.encode(), b"f" * 40)

    reason = refusal(proj.pygit2(), base, lie)
    assert reason == "does not apply on the target: binary patch for data.bin does not produce the content its index names"


def _base85_hunk(kind: str, size: int, deflated: bytes) -> bytes:
    """A git binary hunk: `kind size`, then lines of up to 52 bytes in base85."""
    out = [f"{kind} {size}".encode()]
    for i in range(0, len(deflated), 52):
        chunk = deflated[i:i + 52]
        length = len(chunk)
        char = chr(ord("A") + length - 1) if length <= 26 else chr(ord("a") + length - 27)
        out.append(char.encode() + base64.b85encode(chunk + b"\0" * (-length % 4)))
    return b"\n".join(out) + b"\n\n"


def _encode_binary_hunk(kind: str, size: int, payload: bytes) -> bytes:
    return _base85_hunk(kind, size, zlib.compress(payload, 9))


def _binary_patch(old_id: str, new_id: str, hunk: bytes, path: str = "data.bin") -> bytes:
    return (f"diff --git a/{path} b/{path}\nindex {old_id}..{new_id}\nGIT binary patch\n".encode() + hunk)


def test_hand_encoded_literal_round_trips(odb: pygit2.Repository) -> None:
    """The encoder used below writes what git writes."""
    base = make_tree(odb, {"data.bin": (MODE_FILE, b"\0old")})
    new = b"\0new content"
    want = make_tree(odb, {"data.bin": (MODE_FILE, new)})
    old_id, new_id = str(pygit2.hash(b"\0old")), str(pygit2.hash(new))
    data = _binary_patch(old_id, new_id, _encode_binary_hunk("literal", len(new), new))

    assert errauto_apply(odb, base, data) == [str(want)]


def test_literal_declaring_more_than_max_blob_bytes_is_refused_unread(odb: pygit2.Repository) -> None:
    """The declared size is checked before any inflating: the data is not even valid zlib."""
    base = make_tree(odb, {"data.bin": (MODE_FILE, b"\0old")})
    hunk = b"literal 1099511627776\nzq" + b"0" * 65 + b"\n\n"
    data = _binary_patch(str(pygit2.hash(b"\0old")), "1" * 40, hunk)

    reason = refusal(odb, base, data)
    assert reason == ("line 4: binary hunk of 1,099,511,627,776 bytes is over the limit of "
                      "52,428,800 (max_blob_bytes)")


def test_literal_that_inflates_beyond_its_declared_size_is_cut_short(odb: pygit2.Repository) -> None:
    """A zip bomb: a small declared size, 64 MiB of zeros behind it."""
    base = make_tree(odb, {"data.bin": (MODE_FILE, b"\0old")})
    bomb = zlib.compress(b"\0" * (64 << 20), 9)
    assert len(bomb) < 70_000
    data = _binary_patch(str(pygit2.hash(b"\0old")), "1" * 40, _base85_hunk("literal", 10, bomb))

    started = time.monotonic()
    reason = refusal(odb, base, data)
    assert reason == "line 4: binary patch inflates to a different size than it declares"
    assert time.monotonic() - started < 2


def _delta(source_size: int, result_size: int, ops: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte = n & 0x7F
            n >>= 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)
    return varint(source_size) + varint(result_size) + ops


def test_delta_producing_more_than_max_blob_bytes_is_refused(odb: pygit2.Repository) -> None:
    """A delta bomb: each one-byte copy opcode repeats 64 KiB of the source."""
    source = random.Random(1).randbytes(1 << 16)
    base = make_tree(odb, {"data.bin": (MODE_FILE, source)})
    copies = 1 << 12  # 256 MiB of output from a 4 KiB delta
    delta = _delta(len(source), copies << 16, b"\x80" * copies)
    data = _binary_patch(str(pygit2.hash(source)), "1" * 40, _encode_binary_hunk("delta", len(delta), delta))

    started = time.monotonic()
    reason = refusal(odb, base, data)
    assert reason == ("line 4: binary delta makes a file of 268,435,456 bytes, over the limit of "
                      "52,428,800 (max_blob_bytes)")
    assert time.monotonic() - started < 2


def test_delta_within_the_limit_applies(odb: pygit2.Repository) -> None:
    source = random.Random(2).randbytes(1 << 16)
    result = source * 3 + b"tail"
    delta = _delta(len(source), len(result), b"\x80\x80\x80" + b"\x04tail")
    base = make_tree(odb, {"data.bin": (MODE_FILE, source)})
    want = make_tree(odb, {"data.bin": (MODE_FILE, result)})
    data = _binary_patch(str(pygit2.hash(source)), str(pygit2.hash(result)),
                         _encode_binary_hunk("delta", len(delta), delta))

    assert errauto_apply(odb, base, data) == [str(want)]
    assert "binary delta makes a file of 196,612 bytes" in refusal(
        odb, base, data, limits=Limits(max_blob_bytes=196_611))


def test_copies_with_deltas_share_one_budget(odb: pygit2.Repository) -> None:
    """A delta bomb spread over copies of one source: each under the limit, together not."""
    source = random.Random(3).randbytes(700)
    base = make_tree(odb, {"src.bin": (MODE_FILE, source)})
    delta = _delta(len(source), 700, b"\xb0\xbc\x02")  # copy 700 (0x2bc) bytes from offset 0
    assert apply_delta(source, delta) == source
    result = str(pygit2.hash(source))

    def copies(n: int) -> bytes:
        return b"".join(
            f"diff --git a/src.bin b/c{i}.bin\nsimilarity index 100%\ncopy from src.bin\ncopy to c{i}.bin\n"
            f"index {result}..{result}\nGIT binary patch\n".encode()
            + _encode_binary_hunk("delta", len(delta), delta) for i in range(n))

    limits = Limits(max_blob_bytes=1000)
    assert len(errauto_apply(odb, base, copies(2), limits=limits)) == 1
    assert "(twice max_blob_bytes)" in refusal(odb, base, copies(3), limits=limits)


@pytest.mark.parametrize("delta, reason", [
    (_delta(5, 5, b"\x05hello"), "binary delta was made for a different preimage"),
    (_delta(4, 9, b"\x90\x09"), "corrupt binary delta"),  # copies past the source
    (_delta(4, 3, b"\x04abcd"), "corrupt binary delta"),  # inserts past the declared size
    (_delta(4, 8, b"\x00"), "corrupt binary delta"),  # opcode 0 is reserved
    (_delta(4, 8, b"\x04ab"), "corrupt binary delta"),  # insert runs off the end
    (_delta(4, 8, b"\x91"), "corrupt binary delta"),  # copy arguments missing
    (_delta(4, 8, b"\x02ab"), "corrupt binary delta"),  # shorter than declared
    (b"\x84", "corrupt binary delta"),  # header cut short
])
def test_corrupt_deltas(delta: bytes, reason: str) -> None:
    with pytest.raises(DoesNotApply, match=re.escape(reason)):
        apply_delta(b"abcd", delta)


def test_delta_copy_and_insert() -> None:
    source = b"0123456789"
    # copy 3 bytes from offset 2, insert "xy", copy 2 bytes from offset 8
    delta = _delta(10, 7, b"\x91\x02\x03" + b"\x02xy" + b"\x91\x08\x02")
    assert apply_delta(source, delta) == b"234xy89"


# --------------------------------------------------------------------------
# series and overlays

def test_series_applies_commit_by_commit(proj: GitRepo) -> None:
    base = proj.head()
    trees = [commit_change(proj, {"f.py": LINES.replace("line 3\n", "three\n")}, "one"),
             commit_change(proj, {"f.py": LINES.replace("line 3\n", "THREE\n")}, "two"),
             commit_change(proj, {"g.py": None, "h.py": "h\n"}, "three")]
    data = run(proj.path, "git", "format-patch", "--stdout", f"{base}..HEAD")
    repo = proj.pygit2()

    assert errauto_apply(repo, tree_of(proj, base), data) == trees


def test_series_failure_names_the_commit(proj: GitRepo) -> None:
    base = proj.head()
    commit_change(proj, {"f.py": LINES.replace("line 3\n", "three\n")}, "one")
    commit_change(proj, {"g.py": "g1\ng2\nchanged\n"}, "two")
    data = run(proj.path, "git", "format-patch", "--stdout", f"{base}..HEAD")
    proj.git("reset", "-q", "--hard", base)
    target = commit_change(proj, {"g.py": "g1\ng2\nsomething else\n"})

    reason = refusal(proj.pygit2(), target, data, target="main")
    line = data.split(b"\n").index(b"@@ -1,3 +1,3 @@") + 1
    assert data.split(b"\n")[line:line + 3] == [b" g1", b" g2", b"-g3"]
    assert reason == f"commit 2 (two): does not apply on main: hunk 1 of g.py (patch line {line}) does not match"


def test_overlay_reads_and_writes_in_memory(proj: GitRepo) -> None:
    proj.write("d/one.py", "one\n")
    proj.write("d/two.py", "two\n")
    base_tree = commit_change(proj, {})
    repo = proj.pygit2()
    overlay = Overlay(repo, repo[base_tree])  # type: ignore[arg-type]
    objects_before = set(repo.odb)

    overlay.delete("d/one.py")
    assert overlay.mode("d") == MODE_TREE
    overlay.delete("d/two.py")
    assert overlay.mode("d") is None and overlay.mode("d/two.py") is None
    overlay.set("d", MODE_EXEC, b"#!/bin/sh\n")
    overlay.set("e/f/g.py", MODE_FILE, b"g\n")
    assert overlay.mode("e") == MODE_TREE and overlay.mode("e/f") == MODE_TREE
    assert overlay.read("d") == b"#!/bin/sh\n" and overlay.read("g.py") == b"g1\ng2\ng3\n"
    assert overlay.blob_id("e/f/g.py") == str(pygit2.hash(b"g\n"))
    assert overlay.changed_paths() == ["d", "d/one.py", "d/two.py", "e/f/g.py"]
    assert set(repo.odb) == objects_before  # nothing written yet

    tree = repo[overlay.write_tree()]
    assert sorted(e.name for e in tree) == ["d", "e", "f.py", "g.py"]  # type: ignore[attr-defined]
    assert tree["d"].filemode == MODE_EXEC  # type: ignore[index]
    assert tree["e/f/g.py"].read_raw() == b"g\n"  # type: ignore[index]


def test_deleting_everything_leaves_the_empty_tree(proj: GitRepo) -> None:
    base = tree_of(proj)
    data = proj.make_patch({"f.py": None, "g.py": None})

    assert errauto_apply(proj.pygit2(), base, data) == ["4b825dc642cb6eb9a060e54bf8d69288fbee4904"]


@pytest.mark.parametrize("content, hunk_lines, expected", [
    (b"a\nb\nc", [(" ", b"a\n"), ("-", b"b\n"), ("+", b"B\n"), (" ", b"c")], b"a\nB\nc"),
    (b"a\nb\n", [(" ", b"a\n"), ("-", b"b\n"), ("+", b"b")], b"a\nb"),
    (b"", [("+", b"x\n")], b"x\n"),
    (b"a\r\nb\r\n", [("-", b"a\r\n"), ("+", b"A\r\n"), (" ", b"b\r\n")], b"A\r\nb\r\n"),
])
def test_apply_hunks_keeps_line_endings(content: bytes, hunk_lines: list[tuple[str, bytes]],
                                        expected: bytes) -> None:
    from errauto_daemon.patchfile import Hunk
    old = sum(1 for t, _ in hunk_lines if t != "+")
    new = sum(1 for t, _ in hunk_lines if t != "-")
    hunk = Hunk(1 if old else 0, old, 1 if new else 0, new, tuple(hunk_lines), 1)
    assert apply_hunks(content, [hunk], path="x", preimage_proven=False) == expected


@pytest.mark.parametrize("data, lines", [
    (b"", []),
    (b"a", [b"a"]),
    (b"a\n", [b"a\n"]),
    (b"a\r\nb", [b"a\r\n", b"b"]),
    (b"\n\n", [b"\n", b"\n"]),
])
def test_split_lines(data: bytes, lines: list[bytes]) -> None:
    assert split_lines(data) == lines and b"".join(lines) == data


def test_a_hunk_with_countless_near_matches_is_refused_within_a_budget(odb: pygit2.Repository) -> None:
    # 200,000 identical lines, and a 2,000-line hunk that almost matches
    # everywhere: placing it naively costs ~4e8 line comparisons.
    base = make_tree(odb, {"big.txt": (MODE_FILE, b"x\n" * 200_000)})
    body = b" x\n" * 1000 + b"-y\n+z\n" + b" x\n" * 999
    data = (b"diff --git a/big.txt b/big.txt\n--- a/big.txt\n+++ b/big.txt\n"
            b"@@ -50000,2000 +50000,2000 @@\n" + body)
    reason = refusal(odb, base, data)
    assert "too long to place" in reason


def test_a_short_index_id_does_not_prove_the_preimage(odb: pygit2.Repository) -> None:
    content = b"".join(b"line %d\n" % i for i in range(1, 41))
    base = make_tree(odb, {"f.txt": (MODE_FILE, content)})
    blob = str(pygit2.hash(content))
    zero_context = b"@@ -20,0 +21 @@\n+added\n"
    header = b"diff --git a/f.txt b/f.txt\nindex %s..1234567 100644\n--- a/f.txt\n+++ b/f.txt\n"
    assert len(errauto_apply(odb, base, header % blob[:7].encode() + zero_context)) == 1
    reason = refusal(odb, base, header % blob[:4].encode() + zero_context)
    assert "has no context lines" in reason
