"""The small helpers the parser, the applier, the guard and intake share."""
from __future__ import annotations

import random
import re

import pytest

from errauto_daemon import inbox, patchfile
from errauto_daemon.errors import PatchRejected
from errauto_daemon.patchfile import SUFFIXES, ancestors, delta_header, parse
from tests.helpers.gitrepo import ROOT, GitRepo

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend


def test_delta_header_of_a_real_git_delta(repo: GitRepo) -> None:
    noise = random.Random(3).randbytes(40_000)
    before, after = noise, noise[:20_000] + b"a small change" + noise[20_000:30_000]
    base = repo.commit("before", {"data.bin": before})
    want = repo.commit("after", {"data.bin": after})
    forward, backward = parse(repo.diff("--binary", base, want)).files()[0].binary or (None, None)
    assert forward is not None and forward.kind == "delta"
    header = delta_header(forward.data)
    assert header is not None and header[:2] == (len(before), len(after))
    assert 0 < header[2] < len(forward.data)  # the copy and insert opcodes follow
    assert backward is not None and backward.kind == "delta"
    reverse = delta_header(backward.data)
    assert reverse is not None and reverse[:2] == (len(after), len(before))


def test_delta_header_refuses_a_truncated_or_oversized_header() -> None:
    assert delta_header(b"") is None
    assert delta_header(b"\x80\x01") is None  # one size, and the second missing
    assert delta_header(b"\xff" * 10 + b"\x01\x05") is None  # over 64 bits
    assert delta_header(b"\x05\x83\x01rest") == (5, 131, 3)


def test_ancestors_are_the_directories_above_a_path_outermost_first() -> None:
    assert list(ancestors("a/b/c.txt")) == ["a", "a/b"]
    assert list(ancestors("top.txt")) == []


def test_one_list_of_patch_file_suffixes() -> None:
    assert inbox.SUFFIXES is patchfile.SUFFIXES  # type: ignore[attr-defined]  # the name it re-exports
    # The pre-commit framework's hook takes the same files (its `files:` is a regex).
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text()
    pattern = re.search(r"^\s+files: (.+)$", hooks, re.MULTILINE)
    assert pattern is not None
    taken = [s for s in (*SUFFIXES, ".txt", ".patch.orig") if re.search(pattern.group(1), "x" + s)]
    assert taken == list(SUFFIXES)


def test_a_git_section_gathers_extended_headers_then_names_its_file() -> None:
    from errauto_daemon.patchfile import MODE_EXEC, MODE_FILE, _GitSection

    section = _GitSection(7, "a/old name.py", "b/new.py")
    for line in (b"old mode 100644", b"new mode 100755", b"similarity index 90%",
                 b"rename from old name.py", b"rename to new.py", b"index 1234abc..5678def"):
        assert section.take_extended_header(line, 8)
    assert not section.take_extended_header(b"--- a/old name.py", 9)
    fp = section.file_patch()
    assert (fp.old_path, fp.new_path, fp.old_mode, fp.new_mode) == ("old name.py", "new.py", MODE_FILE, MODE_EXEC)
    assert (fp.old_id, fp.new_id, fp.line) == ("1234abc", "5678def", 7)
    assert fp.raw_names == ("a/old name.py", "b/new.py", "old name.py", "new.py")


@pytest.mark.parametrize("lines, names, reason", [
    ([b"new file mode 100644"], ("a/x", "/dev/null"), "line 3: new file has an old name"),
    ([b"deleted file mode 100644"], ("/dev/null", "b/x"), "line 3: deleted file has a new name"),
    ([b"old mode 100644", b"new mode 100644"], None, "line 3: the diff for x changes nothing"),
    ([], ("a/x", "b/y"), "line 3: inconsistent new file name (x vs y)"),
])
def test_a_git_section_that_contradicts_itself_is_refused(
        lines: list[bytes], names: tuple[str, str] | None, reason: str) -> None:
    from errauto_daemon.patchfile import _GitSection

    section = _GitSection(3, "a/x", "b/x")
    for line in lines:
        assert section.take_extended_header(line, 4)
    if names is not None:
        section.take_names(*names)
    with pytest.raises(PatchRejected) as info:
        section.file_patch()
    assert info.value.reason == reason
