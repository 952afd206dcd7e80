"""Parsing and applying stay linear in the patch, under a time budget.

No test here times anything. Each hostile shape is built large (megabytes,
where the quadratic code took minutes) and parsed under the product's own
budget (`max_parse_seconds`, 10 s by default): a quadratic path comes back
as the rejection "took more than 10 s to parse", so the test fails on it
without measuring. The rewritten scans are also checked against the regexes
and loops they replace, on many small inputs (hypothesis), so linear time
did not change what is accepted.
"""
from __future__ import annotations

import re
from pathlib import Path

import pygit2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from errauto_daemon import patchfile
from errauto_daemon.errors import PatchRejected
from errauto_daemon.patchapply import _find, _LineIndex, apply_hunks, apply_patch
from errauto_daemon.patchfile import Deadline, Limits, parse, parse_once
from tests.helpers.gitrepo import GitRepo

MB = 1024 * 1024


def reason(data: bytes, limits: Limits = Limits()) -> str:
    with pytest.raises(PatchRejected) as exc:
        parse(data, "p.patch", limits=limits)
    return exc.value.reason


# -- large hostile input: done within the budget -----------------------------

def test_a_megabyte_header_line_of_spaces_is_parsed() -> None:
    # 66 s before: every space split the line and decoded both halves.
    data = b"diff --git " + b" " * (2 * MB) + b"\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    patch = parse(data, "p.patch")
    assert [f.path for f in patch.files()] == ["x"]


def test_a_header_line_of_many_words_finds_its_names() -> None:
    name = b"d/" + b"w " * (MB // 4)
    data = b"diff --git a/" + name + b" b/" + name + b"\nnew file mode 100644\n--- /dev/null\n+++ b/" \
        + name + b"\n@@ -0,0 +1 @@\n+x\n"
    patch = parse(data, "p.patch")
    assert patch.files()[0].path == name.decode()


@pytest.mark.parametrize(("data", "why"), [
    (b"From x " + b"00:00 " * (MB // 3) + b"\n", "no diff found"),
    (b"Binary files " + b"x and " * (MB // 3) + b"\n", "no diff found"),
    (b"\n" * MB + b"From a 00:00 2000\nSubject: x\n\nx\n" + b"x\nFrom a 00:00 2000\n" * (MB // 20),
     "has no diff"),
    (b"From a 00:00 2000\nSubject: x\n\nSubject: a" + b" " * (2 * MB) + b"b\n\nbody\n", "has no diff"),
    (b"From a 00:00 2000\nSubject: " + b"[" * 16000 + b"\n\n" + b"x\n" * MB, "has no diff"),
    (b"From a 00:00 2000\nSubject: " + b"[" * (64 * 1024) + b"\n\nx\n", "Subject header is over"),
    (b"From a 00:00 2000\nSubject: x\n\nSubject: " + b"[" * MB + b"\n\nx\n", "has no diff"),
    (b"From a 00:00 2000\nFrom: " + b"a," * MB + b"\nSubject: x\n\nbody\n", "From header is over"),
    (b"From a 00:00 2000\nSubject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n"
     + b"--B\nContent-Type: text/plain\n\nx\n@@ y\n" * (MB // 40) + b"--B--\n", "has no diff"),
], ids=["mbox-times", "binary-files-and", "blank-lines-then-mails", "in-body-header-spaces",
        "subject-brackets", "long-subject", "in-body-subject-brackets", "long-from", "mime-parts"])
def test_hostile_shapes_are_decided_within_the_budget(data: bytes, why: str) -> None:
    found = reason(data)
    assert why in found and "took more than" not in found


def test_many_hunks_in_a_long_file_apply_within_the_budget(tmp_path: Path) -> None:
    # 95 ms per hunk before: each hunk listed and sorted every candidate line.
    lines = [b"same\n" if i % 2 else b"line %d\n" % i for i in range(200_000)]
    repo = GitRepo(tmp_path / "r")
    repo.commit("base", {"big.txt": b"".join(lines)})
    changed = list(lines)
    for i in range(0, len(lines) - 10, 13):
        changed[i + 3] = b"changed %d\n" % i
    repo.write("big.txt", b"".join(changed))
    data = repo.diff()
    repo.git("checkout", "-q", "big.txt")
    patch = parse(data, "p.patch")
    assert len(patch.files()[0].hunks) > 10_000
    odb = pygit2.Repository(str(repo.path))
    overlays, _ = apply_patch(odb, odb.head.peel(pygit2.Commit).tree, patch)
    assert overlays[-1].read("big.txt") == b"".join(changed)


# -- the budget --------------------------------------------------------------

def numbered_file_patch(count: int) -> bytes:
    body = b"".join(b"+line %d\n" % i for i in range(count))
    return (b"diff --git a/n.txt b/n.txt\nnew file mode 100644\n--- /dev/null\n+++ b/n.txt\n"
            b"@@ -0,0 +1,%d @@\n" % count) + body


def test_a_patch_over_the_time_budget_is_rejected_with_the_reason() -> None:
    found = reason(numbered_file_patch(5000), Limits(max_parse_seconds=1e-6))
    assert found.startswith("took more than 1e-06 s to parse and apply (max_parse_seconds)")


def test_applying_spends_the_same_budget() -> None:
    # Thousands of places to try for a hunk that fits none of them.
    old = b"a\n" * 5000
    hunks = parse(b"--- a/f\n+++ b/f\n@@ -2500,4 +2500,4 @@\n a\n-b\n+c\n a\n a\n", "p.patch").files()[0].hunks
    with pytest.raises(PatchRejected, match="took more than"):
        apply_hunks(old, hunks, path="f", preimage_proven=False, deadline=Deadline(1e-6))


def test_max_parse_seconds_is_a_configuration_key(tmp_path: Path) -> None:
    from errauto_daemon.config import keys
    from errauto_daemon.errors import ConfigError

    built = keys.validated({"target": "main", "max_parse_seconds": 2.5}, "t")
    assert built.limits().max_parse_seconds == 2.5
    with pytest.raises(ConfigError, match="max_parse_seconds must be above 0"):
        keys.validated({"target": "main", "max_parse_seconds": 0}, "t")


# -- parse once ----------------------------------------------------------------

def test_the_same_bytes_are_parsed_once() -> None:
    data = numbered_file_patch(3)
    first = parse_once(data, "once.patch")
    assert parse_once(data, "once.patch") is first
    assert parse_once(data, "once.patch", limits=Limits(max_files=5)) is not first


def test_a_parse_that_asked_the_tree_is_not_reused() -> None:
    data = b"--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n"
    first = parse_once(data, "u.patch", exists=lambda p: p == "f")
    assert parse_once(data, "u.patch", exists=lambda p: p == "a/f") is not first
    assert parse_once(data, "u.patch", exists=lambda p: p == "a/f").files()[0].path == "a/f"


# -- the same answers as the code they replace ---------------------------------

OLD_MBOX_FROM = re.compile(rb"^From \S+ .*\d\d:\d\d(:\d\d)? .*\d{4}\s*$")
OLD_BINARY_DIFFERS = re.compile(rb"Binary files (.+) and (.+) differ")
OLD_PATCH_NUMBER = re.compile(r"\[[^\]]*?\b0+/\d+\s*\]")


def old_git_header_names(rest: bytes) -> tuple[str | None, str | None]:
    if rest.startswith(b'"'):  # this branch did not change
        return patchfile._git_header_names(rest)
    for i, ch in enumerate(rest):
        if ch != 0x20:
            continue
        left, right = rest[:i], rest[i + 1:]
        if right.startswith(b'"'):
            return patchfile._decode_name(left), patchfile._decode_name(patchfile._unquote(right)[0])
        a = patchfile._strip_prefix(patchfile._decode_name(left))
        b = patchfile._strip_prefix(patchfile._decode_name(right))
        if a is not None and a == b:
            return patchfile._decode_name(left), patchfile._decode_name(right)
    return None, None


def outcome(fn, *args):
    try:
        return fn(*args)
    except PatchRejected as exc:
        return ("rejected", exc.reason)


header_bytes = st.lists(st.sampled_from([b" ", b"/", b"a", b"b", b"a/", b"b/", b'"', b"\\", b"\xc3\xa9",
                                          b"\xff", b"x y", b"\t"]), max_size=14).map(b"".join)


@settings(max_examples=400, deadline=None, database=None)
@given(header_bytes)
def test_header_names_as_before(rest: bytes) -> None:
    assert outcome(patchfile._git_header_names, rest) == outcome(old_git_header_names, rest)


line_bytes = st.lists(st.sampled_from([b"From ", b"From", b" ", b"x", b"12", b"00:00", b":", b"2024", b"\t",
                                        b"1", b"Binary files ", b" and ", b"and", b" differ", b"\r",
                                        b"\x0b"]), max_size=12).map(b"".join)


@settings(max_examples=500, deadline=None, database=None)
@given(line_bytes)
def test_mbox_separator_and_binary_line_as_before(line: bytes) -> None:
    assert patchfile._is_mbox_from(line) == bool(OLD_MBOX_FROM.match(line))
    old = OLD_BINARY_DIFFERS.fullmatch(line)
    assert patchfile._binary_differs(line) == (old.groups() if old else None)


@settings(max_examples=500, deadline=None, database=None)
@given(st.lists(st.sampled_from(["[", "]", "0", "00", "/", "3", "12", " ", "a", "_", "PATCH", "v2",
                                 "é", "٣", "\u3000"]), max_size=12).map("".join))
def test_cover_letter_as_before(subject: str) -> None:
    assert patchfile._is_cover_letter(subject) == bool(OLD_PATCH_NUMBER.search(subject))


def old_find_order(lines: list[bytes], first: bytes, expected: int, floor: int, last: int) -> list[int]:
    candidates = [i for i in range(floor, last + 1) if lines[i] == first]
    candidates.sort(key=lambda i: (abs(i - expected), i > expected))
    return candidates


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(st.sampled_from([b"a\n", b"b\n", b"c\n"]), max_size=30), st.integers(0, 35),
       st.integers(0, 35), st.integers(-1, 35))
def test_hunks_try_their_places_in_the_same_order(lines: list[bytes], expected: int, floor: int,
                                                   last: int) -> None:
    last = min(last, len(lines) - 1)
    order = list(_LineIndex(lines).nearest_first(b"a\n", expected, floor, last))
    assert order == old_find_order(lines, b"a\n", expected, floor, last)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from([b"a\n", b"b\n", b"c\n"]), max_size=30),
       st.lists(st.sampled_from([b"a\n", b"b\n", b"c\n"]), min_size=1, max_size=3),
       st.integers(0, 35), st.integers(0, 35))
def test_hunks_land_where_they_did(lines: list[bytes], pre: list[bytes], expected: int, floor: int) -> None:
    expected_at = min(max(expected, floor), len(lines))
    old = next((at for at in old_find_order(lines, pre[0], expected_at, floor, len(lines) - len(pre))
                if lines[at:at + len(pre)] == pre), None)
    assert _find(lines, pre, expected, floor, match_beginning=False, match_end=False) == old


# -- what a user sees ------------------------------------------------------------

def test_errauto_apply_rejects_a_patch_over_the_budget(project: GitRepo, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers.cli import run

    config = "max_parse_seconds = 0.000001\n" + project.read(".errauto.toml")
    project.commit("a tiny parse budget", {".errauto.toml": config})
    base = project.head()
    patch = tmp_path / "big.patch"
    patch.write_bytes(project.make_patch({"numbers.txt": "".join(f"{i}\n" for i in range(5000))}))

    code, out, _ = run(capsys, "apply", str(patch), "--repo", str(project.path))

    assert code == 4, out
    assert "took more than 1e-06 s to parse and apply (max_parse_seconds)" in out
    assert project.head("main") == base
