"""Apply a parsed patch to a git tree, in memory, the strict way.

Nothing is written while applying: the result is an `Overlay` (a tree plus
pending changes) that is only turned into git objects once the whole patch
applied and the guard accepted it. So a patch that does not apply is decided
without touching a worktree or the object store.

The rules are `git apply`'s defaults, not libgit2's looser ones:
- context must match exactly (no fuzz); a hunk may move (offset) but hunks
  apply in order and never overlap;
- a hunk that starts at line 1 must match at the beginning of the file, one
  without trailing context must match at its end;
- a hunk with no context at all is refused, unless the patch's `index` line
  proves it was made against exactly this file (git needs --unidiff-zero);
- binary patches apply only to the exact preimage their full index names,
  and must produce exactly the postimage it names.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pygit2

from errauto_daemon.errors import PatchRejected
from errauto_daemon.patchfile import (
    MODE_FILE,
    MODE_GITLINK,
    MODE_LINK,
    Deadline,
    FilePatch,
    Hunk,
    Limits,
    Patch,
    PatchCommit,
    ancestors,
    delta_header,
)

MODE_TREE = 0o040000


# Line comparisons one hunk may spend looking for its place.
SEARCH_BUDGET = 5_000_000
# An abbreviated object id must have at least this many hex digits to prove
# which version of a file a context-free hunk was made against.
MIN_PROOF_DIGITS = 7


class DoesNotApply(Exception):
    """A file patch does not apply to the tree it was given."""


def split_lines(data: bytes) -> list[bytes]:
    """Lines with their endings; a final line without a newline keeps none."""
    if not data:
        return []
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _kind(mode: int) -> str:
    if mode == MODE_LINK:
        return "symlink"
    if mode == MODE_GITLINK:
        return "submodule"
    if mode == MODE_TREE:
        return "directory"
    return "file"


@dataclass
class Overlay:
    """A git tree and the changes made to it so far, addressed by path."""

    repo: pygit2.Repository
    tree: pygit2.Tree | None
    # path -> (mode, content) or None for a deletion; a gitlink's "content"
    # is its commit id in hex.
    changes: dict[str, tuple[int, bytes] | None] = field(default_factory=dict)
    # Per directory: how many changes below it leave a file (not deletions),
    # and whether any change lies below it; kept by `set` and `delete`, so
    # that asking about one path does not scan every change.
    _live_below: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _changed_below: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        for path, val in self.changes.items():
            self._count(path, None, val)

    def _count(self, path: str, old: tuple[int, bytes] | None, new: tuple[int, bytes] | None) -> None:
        delta = (new is not None) - (old is not None)
        for directory in ancestors(path):
            self._changed_below.add(directory)
            if delta:
                self._live_below[directory] = self._live_below.get(directory, 0) + delta

    def _base(self, path: str) -> pygit2.Object | None:
        if self.tree is None:
            return None
        try:
            return self.tree[path]
        except KeyError:
            return None

    def mode(self, path: str) -> int | None:
        """The mode at `path` (MODE_TREE for a directory), or None."""
        if path in self.changes:
            val = self.changes[path]
            if val is not None:
                return val[0]
            return MODE_TREE if self._has_children(path) else None
        if self._has_children(path):
            return MODE_TREE
        obj = self._base(path)
        if obj is None or obj.filemode == MODE_TREE:
            return None  # no such path, or a directory whose files were all deleted
        for ancestor in ancestors(path):
            if ancestor in self.changes:
                val = self.changes[ancestor]
                if val is None or val[0] != MODE_TREE:
                    return None  # an ancestor was deleted or replaced by a file
        return int(obj.filemode)

    def _has_children(self, path: str) -> bool:
        if self._live_below.get(path, 0) > 0:
            return True
        obj = self._base(path)
        if obj is None or obj.filemode != MODE_TREE:
            return False
        if path not in self._changed_below:
            return True  # git trees are never empty
        prefix = path + "/"
        deleted = {k for k in self.changes if k.startswith(prefix)}  # all deletions: none is live
        return any(p not in deleted for p in _walk(self.repo, obj, prefix))  # type: ignore[arg-type]

    def read(self, path: str) -> bytes:
        if path in self.changes:
            val = self.changes[path]
            assert val is not None
            return val[1]
        obj = self._base(path)
        assert obj is not None
        if obj.filemode == MODE_GITLINK:
            return str(obj.id).encode()
        return obj.read_raw()

    def blob_id(self, path: str) -> str:
        if path in self.changes:
            val = self.changes[path]
            assert val is not None
            mode, data = val
            return data.decode() if mode == MODE_GITLINK else str(pygit2.hash(data))
        obj = self._base(path)
        assert obj is not None
        return str(obj.id)

    def set(self, path: str, mode: int, data: bytes) -> None:
        self._count(path, self.changes.get(path), (mode, data))
        self.changes[path] = (mode, data)

    def delete(self, path: str) -> None:
        self._count(path, self.changes.get(path), None)
        self.changes[path] = None

    def changed_paths(self) -> list[str]:
        return sorted(self.changes)

    def write_tree(self) -> pygit2.Oid:
        """Write the blobs and trees of the result; returns the root tree id."""
        root = _build(self.repo, self.tree, dict(self.changes))
        if root is None:
            return self.repo.TreeBuilder().write()
        return root


def _walk(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str) -> Iterator[str]:
    for entry in tree:
        path = prefix + str(entry.name)
        if entry.filemode == MODE_TREE:
            yield from _walk(repo, repo[entry.id], path + "/")  # type: ignore[arg-type]
        else:
            yield path


def _build(repo: pygit2.Repository, tree: pygit2.Tree | None,
           changes: dict[str, tuple[int, bytes] | None]) -> pygit2.Oid | None:
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    direct: dict[str, tuple[int, bytes] | None] = {}
    nested: dict[str, dict[str, tuple[int, bytes] | None]] = {}
    for path, val in changes.items():
        head, sep, rest = path.partition("/")
        if sep:
            nested.setdefault(head, {})[rest] = val
        else:
            direct[head] = val
    # Directories first: a file may replace a directory whose files were all
    # deleted, and a directory may replace a deleted file.
    for name, sub in nested.items():
        existing = builder.get(name)
        is_tree = existing is not None and existing.filemode == MODE_TREE
        subtree = repo[existing.id] if is_tree and existing is not None else None
        oid = _build(repo, subtree, sub)  # type: ignore[arg-type]
        if oid is None:
            if is_tree:
                builder.remove(name)
        else:
            if direct.get(name) is not None:
                raise DoesNotApply(f"{name} would be both a file and a directory")
            builder.insert(name, oid, MODE_TREE)
    for name, val in direct.items():
        existing = builder.get(name)
        if val is None:
            if existing is not None and existing.filemode != MODE_TREE:
                builder.remove(name)
            continue
        mode, data = val
        oid = pygit2.Oid(hex=data.decode()) if mode == MODE_GITLINK else repo.create_blob(data)
        builder.insert(name, oid, mode)
    if len(builder) == 0:
        return None
    return builder.write()


def apply_patch(repo: pygit2.Repository, base_tree: pygit2.Tree, patch: Patch,
                *, target: str = "the target", deadline: Deadline | None = None,
                ) -> tuple[list[Overlay], list[str]]:
    """Apply every commit of `patch` in turn, in memory.

    Returns one overlay per commit, each holding every change from the base
    up to and including that commit, and notes worth showing. Nothing is
    written. Raises PatchRejected when the patch does not apply, or is
    already applied, or when applying it runs past `deadline` (by default
    the default max_parse_seconds from now).
    """
    if deadline is None:
        deadline = Deadline(Limits().max_parse_seconds)
    overlays: list[Overlay] = []
    notes: list[str] = []
    changes: dict[str, tuple[int, bytes] | None] = {}
    for number, commit in enumerate(patch.commits, 1):
        label = f"commit {number} ({commit.title}): " if len(patch.commits) > 1 else ""
        overlay = Overlay(repo, base_tree, dict(changes))
        before = Overlay(repo, base_tree, dict(changes))
        try:
            for fp in _apply_order(commit.files):
                apply_file(overlay, fp, notes, source=before, deadline=deadline)
        except DoesNotApply as exc:
            if _reverse_applies(Overlay(repo, base_tree, dict(changes)), commit, deadline):
                raise PatchRejected(f"{label}already applied on {target}") from None
            raise PatchRejected(f"{label}does not apply on {target}: {exc}") from None
        if _unchanged(overlay, changes):
            raise PatchRejected(f"{label}changes nothing on {target} (already applied?)")
        overlays.append(overlay)
        changes = overlay.changes
    return overlays, notes


def _unchanged(overlay: Overlay, before: dict[str, tuple[int, bytes] | None]) -> bool:
    previous = Overlay(overlay.repo, overlay.tree, before)
    for path, val in overlay.changes.items():
        old_mode = previous.mode(path)
        if val is None:
            if old_mode is not None and old_mode != MODE_TREE:
                return False
            continue
        if old_mode != val[0] or old_mode == MODE_TREE or previous.read(path) != val[1]:
            return False
    return True


def _apply_order(files: Iterable[FilePatch]) -> list[FilePatch]:
    """Deletions first, as git writes its results: a file may replace a
    directory (or a symlink) that the same patch deletes after it."""
    return sorted(files, key=lambda fp: fp.new_path is not None)


def _reverse_applies(overlay: Overlay, commit: PatchCommit, deadline: Deadline) -> bool:
    before = Overlay(overlay.repo, overlay.tree, dict(overlay.changes))
    try:
        for fp in _apply_order(fp.reversed() for fp in reversed(commit.files)):
            apply_file(overlay, fp, [], source=before, deadline=deadline)
    except (DoesNotApply, ValueError):  # ValueError: a copy cannot be reversed
        return False
    return True


def apply_file(overlay: Overlay, fp: FilePatch, notes: list[str], *, source: Overlay | None = None,
               deadline: Deadline | None = None) -> None:
    """Apply one file patch to `overlay`.

    `source` is the state before the commit: like git, a copy or rename reads
    its preimage there, not from what the commit's earlier files made of it.
    """
    old, new = fp.old_path, fp.new_path
    src = source if source is not None and (fp.is_copy or fp.is_rename) else overlay
    content, preimage_proven, old_mode = _preimage(src, old, fp, notes) if old is not None else (b"", True, None)
    if fp.is_rename:
        overlay.delete(old)  # type: ignore[arg-type]  # first: the new name may lie below the old
    if new is not None and new != old:
        _check_free(overlay, new)
    result = _postimage(fp, content, preimage_proven, deadline)
    if new is None:
        if result:
            raise DoesNotApply(f"deleting {old} would leave content behind")
        overlay.delete(old)  # type: ignore[arg-type]
        return
    new_mode = fp.new_mode if fp.new_mode is not None else (old_mode or MODE_FILE)
    if new_mode == MODE_GITLINK:
        result = _gitlink_id(result, new)
    overlay.set(new, new_mode, result)


def _preimage(src: Overlay, old: str, fp: FilePatch, notes: list[str]) -> tuple[bytes, bool, int]:
    """The content the patch changes, whether its index line proves it is the version the
    patch was made against, and its mode. A mismatch is a note for text, fatal for binary."""
    mode = src.mode(old)
    if mode is None:
        raise DoesNotApply(f"{old} does not exist")
    if mode == MODE_TREE:
        raise DoesNotApply(f"{old} is a directory")
    if fp.old_mode is not None and _kind(fp.old_mode) != _kind(mode):
        raise DoesNotApply(f"{old} is a {_kind(mode)}, the patch expects a {_kind(fp.old_mode)}")
    content = src.read(old)
    if mode == MODE_GITLINK:  # as git diff shows a submodule
        content = b"Subproject commit " + content + b"\n"
    current_id = src.blob_id(old)
    preimage_proven = (fp.old_id is not None and len(fp.old_id) >= MIN_PROOF_DIGITS
                       and current_id.startswith(fp.old_id))
    if fp.old_id is not None and not preimage_proven and not set(fp.old_id) <= {"0"}:
        if fp.binary is not None:
            raise DoesNotApply(f"{old} is not the version the binary patch was made against")
        notes.append(f"{old} changed since the patch was made (index {fp.old_id[:12]}, "
                     f"target has {current_id[:12]})")
    return content, preimage_proven, mode


def _check_free(overlay: Overlay, new: str) -> None:
    """A file may be created at `new`: nothing is there, and no directory above it is a file."""
    existing = overlay.mode(new)
    if existing is not None:
        raise DoesNotApply(f"{new} already exists" if existing != MODE_TREE else f"{new} is a directory")
    for ancestor in ancestors(new):
        amode = overlay.mode(ancestor)
        if amode is not None and amode != MODE_TREE:
            raise DoesNotApply(f"cannot create {new}: {ancestor} is a {_kind(amode)}")


def _postimage(fp: FilePatch, content: bytes, preimage_proven: bool, deadline: Deadline | None) -> bytes:
    if deadline is not None:
        deadline.check()
    if fp.binary is not None:
        return _apply_binary(fp, content, deadline)
    if fp.hunks:
        return apply_hunks(content, fp.hunks, path=fp.path, preimage_proven=preimage_proven,
                           deadline=deadline)
    return content


def _gitlink_id(content: bytes, path: str) -> bytes:
    text = content.strip()
    prefix = b"Subproject commit "
    if text.startswith(prefix):
        text = text[len(prefix):].removesuffix(b"-dirty")
    if len(text) not in (40, 64) or any(c not in b"0123456789abcdef" for c in text):
        raise DoesNotApply(f"{path}: submodule entry does not name a commit")
    return text


def apply_hunks(content: bytes, hunks: Iterable[Hunk], *, path: str, preimage_proven: bool,
                deadline: Deadline | None = None) -> bytes:
    lines = split_lines(content)
    where_is = _LineIndex(lines)
    out: list[bytes] = []
    pos = 0  # lines[:pos] are consumed
    offset = 0
    for number, hunk in enumerate(hunks, 1):
        if deadline is not None:
            deadline.step()
        pre, post = hunk.preimage(), hunk.postimage()
        where = f"hunk {number} of {path} (patch line {hunk.line})"
        expected = max(hunk.old_start if hunk.old_count == 0 else hunk.old_start - 1, 0)
        context_free = hunk.leading_context == 0 and hunk.trailing_context == 0
        whole_file = expected == 0 and len(pre) == len(lines)
        if context_free and not whole_file:
            # Nothing anchors this hunk: applied by position alone it could
            # land anywhere, or again on top of itself. Only the index line
            # can prove the file is the one the patch was made against.
            if not preimage_proven:
                raise DoesNotApply(
                    f"{where} has no context lines, so where it belongs cannot be checked; "
                    "make the patch with context (git diff -U3)")
            at = expected
            if at < pos or lines[at:at + len(pre)] != pre:
                raise DoesNotApply(f"{where} does not match")
        else:
            at_or_none = _find(lines, pre, expected + offset, pos,
                               match_beginning=hunk.old_start <= 1,
                               match_end=hunk.trailing_context == 0, index=where_is, deadline=deadline)
            if at_or_none is None:
                raise DoesNotApply(f"{where} does not match")
            at = at_or_none
        out += lines[pos:at]
        out += post
        pos = at + len(pre)
        offset = at - expected
    out += lines[pos:]
    return b"".join(out)


class _LineIndex:
    """Where each distinct line of a file is, ascending; built once per file,
    so placing a hunk costs the candidates it tries, not the file's length."""

    def __init__(self, lines: list[bytes]) -> None:
        self.positions: dict[bytes, list[int]] = {}
        for i, line in enumerate(lines):
            self.positions.setdefault(line, []).append(i)

    def nearest_first(self, line: bytes, expected: int, floor: int, last: int) -> Iterator[int]:
        """The positions of `line` in [floor, last], nearest to `expected` first;
        at equal distance the one before it (the order git searches in)."""
        found = self.positions.get(line, [])
        lo = bisect.bisect_left(found, floor)
        hi = bisect.bisect_right(found, last)
        below = bisect.bisect_right(found, expected, lo, hi) - 1  # the last at or before expected
        above = below + 1
        while below >= lo or above < hi:
            if above >= hi or (below >= lo and expected - found[below] <= found[above] - expected):
                yield found[below]
                below -= 1
            else:
                yield found[above]
                above += 1


def _find(lines: list[bytes], pre: list[bytes], expected: int, floor: int,
          *, match_beginning: bool, match_end: bool, index: _LineIndex | None = None,
          deadline: Deadline | None = None) -> int | None:
    n = len(pre)

    def fits(at: int) -> bool:
        if at < floor or at + n > len(lines):
            return False
        if match_beginning and at != 0:
            return False
        if match_end and at + n != len(lines):
            return False
        return lines[at:at + n] == pre

    if match_beginning:
        return 0 if fits(0) else None
    if match_end:
        at = len(lines) - n
        return at if fits(at) else None
    expected = min(max(expected, floor), len(lines))
    if not pre:
        return expected
    # Search outwards from where the hunk says it belongs, as git does, but
    # only at lines equal to the hunk's first one, and within a work budget:
    # a hostile hunk must not make placing it cost minutes of CPU.
    index = index or _LineIndex(lines)
    work = 0
    for at in index.nearest_first(pre[0], expected, floor, len(lines) - n):
        if deadline is not None:
            deadline.step()
        work += n
        if work > SEARCH_BUDGET:
            raise DoesNotApply("a hunk would take too long to place (too many near-matches); "
                               "make the patch with more context")
        if lines[at:at + n] == pre:
            return at
    return None


def _apply_binary(fp: FilePatch, content: bytes, deadline: Deadline | None = None) -> bytes:
    assert fp.binary is not None
    forward = fp.binary[0]
    if fp.old_id is None or fp.new_id is None or len(fp.old_id) < 40 or len(fp.new_id) < 40:
        raise DoesNotApply(f"binary patch for {fp.path} lacks the full index; "
                           "make it with `git diff --binary`")
    if fp.old_path is not None and str(pygit2.hash(content)) != fp.old_id:
        raise DoesNotApply(f"{fp.old_path} is not the version the binary patch was made against")
    if forward.kind == "literal":
        result = forward.data
    else:
        result = apply_delta(content, forward.data, deadline)
    if fp.new_path is None:
        return b""
    if str(pygit2.hash(result)) != fp.new_id:
        raise DoesNotApply(f"binary patch for {fp.path} does not produce the content its index names")
    return result


def apply_delta(source: bytes, delta: bytes, deadline: Deadline | None = None) -> bytes:
    """git's binary delta format: two sizes, then copy and insert opcodes."""
    try:
        return _apply_delta(source, delta, deadline)
    except IndexError:
        raise DoesNotApply("corrupt binary delta") from None


def _apply_delta(source: bytes, delta: bytes, deadline: Deadline | None) -> bytes:
    header = delta_header(delta)
    if header is None:
        raise DoesNotApply("corrupt binary delta")
    source_size, size, i = header
    if source_size != len(source):
        raise DoesNotApply("binary delta was made for a different preimage")
    out = bytearray()
    while i < len(delta):
        if deadline is not None:
            deadline.step()
        cmd = delta[i]
        i += 1
        if cmd & 0x80:
            off = length = 0
            for bit, shift in ((0x01, 0), (0x02, 8), (0x04, 16), (0x08, 24)):
                if cmd & bit:
                    off |= delta[i] << shift
                    i += 1
            for bit, shift in ((0x10, 0), (0x20, 8), (0x40, 16)):
                if cmd & bit:
                    length |= delta[i] << shift
                    i += 1
            length = length or 0x10000
            if off + length > len(source) or len(out) + length > size:
                raise DoesNotApply("corrupt binary delta")
            out += source[off:off + length]
        elif cmd:
            if i + cmd > len(delta) or len(out) + cmd > size:
                raise DoesNotApply("corrupt binary delta")
            out += delta[i:i + cmd]
            i += cmd
        else:
            raise DoesNotApply("corrupt binary delta")
    if len(out) != size:
        raise DoesNotApply("corrupt binary delta")
    return bytes(out)

