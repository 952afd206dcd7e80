"""The small helpers the parser, the applier, the guard and intake share."""
from __future__ import annotations

import random
import re

from errauto_daemon import inbox, patchfile
from errauto_daemon.commands import hook_impl
from errauto_daemon.patchfile import SUFFIXES, ancestors, delta_header, parse
from gitfixture import ROOT, GitRepo


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
    assert inbox.SUFFIXES is hook_impl.SUFFIXES is patchfile.SUFFIXES
    # The pre-commit framework's hook takes the same files (its `files:` is a regex).
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text()
    pattern = re.search(r"^\s+files: (.+)$", hooks, re.MULTILINE)
    assert pattern is not None
    taken = [s for s in (*SUFFIXES, ".txt", ".patch.orig") if re.search(pattern.group(1), "x" + s)]
    assert taken == list(SUFFIXES)
