"""Fuzzing the parser and the applier: only PatchRejected ever escapes.

Inputs are real patches made by git (diffs, renames, mode changes, binary
patches, a format-patch series) bent by hypothesis: lines dropped, doubled,
swapped or replaced, bytes flipped, hunk headers renumbered, long lines,
CRLF, other encodings, random headers and mails. Each goes the way the
validator takes it: parsed, its names guarded, applied in memory to the tree
it was made against, the result tree guarded. Any exception
other than `PatchRejected` is a finding.

The suite runs a fixed number of examples (a few seconds); for a longer run:

    ERRAUTO_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_fuzz_patch.py

Time growing linearly with size is bench/parse_speed.py's to show, not a test's.
"""
from __future__ import annotations

import os
from pathlib import Path

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from errauto_daemon import guard
from errauto_daemon.errors import PatchRejected
from errauto_daemon.patchapply import Overlay, apply_patch
from errauto_daemon.patchfile import Limits, parse
from tests.helpers.gitrepo import GitRepo

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

EXAMPLES = int(os.environ.get("ERRAUTO_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=EXAMPLES <= 150,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
# Small limits, so that the limits themselves are crossed too.
LIMITS = Limits(max_patch_bytes=256 * 1024, max_hunk_lines=400, max_files=20, max_blob_bytes=64 * 1024)

TEXT = "".join(f"line {i}\n" for i in range(1, 41))


class Seeds:
    def __init__(self, root: Path) -> None:
        repo = GitRepo(root / "repo")
        # Built once per module, before the per-test fixture gives git an identity.
        for key, value in (("core.autocrlf", "false"), ("user.name", "Fuzz"), ("user.email", "fuzz@example.org")):
            repo.git("config", key, value)
        repo.commit("base", {"a.txt": TEXT, "dir/b.py": "x = 1\ny = 2\n" * 10, "c.bin": bytes(range(256)) * 4,
                             "old name.txt": "moved\n" * 5, "tool.sh": "#!/bin/sh\necho hi\n"})
        self.base = repo.head()
        self.odb = pygit2.Repository(str(repo.path))
        repo.edit({"a.txt": TEXT.replace("line 5\n", "five\n").replace("line 30\n", "thirty\nmore\n"),
                   "dir/b.py": "x = 1\ny = 3\n" * 10, "c.bin": bytes(range(255, -1, -1)) * 4,
                   "new file.txt": "fresh\nfile\n"})
        repo.git("mv", "old name.txt", "renamed \u00e9.txt")
        repo.git("update-index", "--chmod=+x", "dir/b.py")
        repo.git("add", "-A")
        self.diffs = [repo.diff("--cached", "--binary", "-M"), repo.diff("--cached", "-U1", "a.txt"),
                      repo.diff("--cached", "--binary", "c.bin")]
        repo.git("commit", "-q", "-m", "first change\n\nwith a body")
        repo.edit({"a.txt": TEXT.replace("line 20\n", "twenty\n"), "tool.sh": None})
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", "second change")
        self.mbox = repo.git("format-patch", "--stdout", "--binary", f"{self.base}..HEAD").encode()
        self.diffs.append(self.mbox)

    @property
    def tree(self) -> pygit2.Tree:
        return self.odb[self.base].peel(pygit2.Tree)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    return Seeds(tmp_path_factory.mktemp("fuzz"))


def check(seeds: Seeds, data: bytes) -> None:
    """The property: parsing and applying end in a patch, or in PatchRejected."""
    try:
        patch = parse(data, "fuzz.patch", limits=LIMITS, exists=lambda p: p in seeds.tree)
        patch.patch_id()
        assert patch.title
        guard.check_names(patch)
        guard.check_base(patch, seeds.tree)
        overlays, _ = apply_patch(seeds.odb, seeds.tree, patch)
        before = Overlay(seeds.odb, seeds.tree)
        for commit, after in zip(patch.commits, overlays, strict=True):
            guard.check_tree(before, after, commit)
            before = after
    except PatchRejected as exc:
        assert exc.reason


fragments = st.sampled_from([
    b"diff --git a/a.txt b/a.txt", b"--- a/a.txt", b"+++ b/a.txt", b"--- /dev/null", b"+++ /dev/null",
    b"@@ -1,3 +1,3 @@", b"@@ -0,0 +1 @@", b"@@ -99999999999,1 +1 @@", b"@@ -1 +1 @@ ctx", b" line 1",
    b"-line 1", b"+x", b"\\ No newline at end of file", b"new file mode 100644", b"deleted file mode 100755",
    b"old mode 100644", b"new mode 120000", b"new mode 160000", b"rename from x", b"rename to y",
    b"copy from a.txt", b"copy to z", b"similarity index 90%", b"index 0000000..1111111 100644",
    b"index abc", b"GIT binary patch", b"literal 0", b"literal 5", b"delta 12", b"zcmV", b"HcmV?d00001",
    b"Binary files a/c.bin and b/c.bin differ", b"From 1234567890123456789012345678901234567890 Mon Sep 17 "
    b"00:00:00 2001", b"From: A <a@b.c>", b"Subject: [PATCH 1/2] x", b"Subject: [PATCH 0/2] cover",
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000", b"Content-Type: multipart/mixed; boundary=B", b"--B",
    b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable", b"MIME-Version: 1.0",
    b"", b"---", b"-- ", b"2.40.0", b'diff --git "a/\\303\\251" "b/\\303\\251"', b'"a/\\777"', b"\r",
    b"\xff\xfe", b"\xc3\xa9", b"\x1b[2J", b"a/../../etc/passwd", b"b/.git/config",
])


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    lines = seed.split(b"\n")
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            lines = [b""]
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "double", "swap", "replace", "insert", "flip", "renumber",
                                   "long", "truncate", "crlf"]))
        if op == "drop":
            del lines[i]
        elif op == "double":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "replace":
            lines[i] = draw(fragments)
        elif op == "insert":
            lines.insert(i, draw(st.one_of(fragments, st.binary(max_size=40))))
        elif op == "flip" and lines[i]:
            k = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:k] + bytes([draw(st.integers(1, 255))]) + lines[i][k + 1:]
        elif op == "renumber" and lines[i].startswith(b"@@"):
            a, b, c, d = (draw(st.integers(0, 60)) for _ in range(4))
            lines[i] = b"@@ -%d,%d +%d,%d @@" % (a, b, c, d)
        elif op == "long":
            lines[i] += draw(st.sampled_from([b" ", b"a", b"/", b"a/ ", b"00:00 ", b" and ", b"["])) \
                * draw(st.integers(1000, 20000))
        elif op == "truncate":
            lines = lines[:i]
        elif op == "crlf":
            lines = [line + b"\r" for line in lines]
    return b"\n".join(lines)


def seed_inputs(seeds: Seeds) -> st.SearchStrategy[bytes]:
    return st.sampled_from(seeds.diffs).flatmap(lambda seed: mutated(seed))


@FUZZ
@given(data=st.data())
def test_mutated_git_patches(seeds: Seeds, data: st.DataObject) -> None:
    check(seeds, data.draw(seed_inputs(seeds)))


@FUZZ
@given(lines=st.lists(st.one_of(fragments, st.binary(max_size=60)), max_size=40))
def test_patch_like_text(seeds: Seeds, lines: list[bytes]) -> None:
    check(seeds, b"\n".join(lines) + b"\n")


@FUZZ
@given(data=st.data())
def test_other_encodings(seeds: Seeds, data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(seeds.diffs)).decode("utf-8", "replace")
    encoding = data.draw(st.sampled_from(["utf-16", "utf-16-le", "latin-1", "utf-8-sig", "cp1252", "utf-7"]))
    check(seeds, seed.encode(encoding, "replace"))


def test_the_seeds_apply(seeds: Seeds) -> None:
    for seed in seeds.diffs:
        patch = parse(seed, "seed.patch", limits=LIMITS, exists=lambda p: p in seeds.tree)
        overlays, _ = apply_patch(seeds.odb, seeds.tree, patch)
        assert overlays
