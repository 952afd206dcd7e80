"""What the page shows of a patch: which files, open or closed, which lines folded, which coloured.

Bounded so a huge patch costs a bounded page: at most `MAX_FILES` files
(a note says how many more there are) and `MAX_LINES` lines of diff in all
(a file past that shows how many of its lines are left out; the whole patch
is a link away, as text); a file with more than `FOLD_CHANGES` changed
lines starts closed; a run of more than `FOLD_CONTEXT` unchanged lines
shows its first and last `KEEP_CONTEXT` and folds the rest. Files are
coloured in order until `COLOUR_LINES` lines are; a file whose diff is
longer than that, or than what is left of it, is shown plain (Pygments
lexes some ten thousand lines a second). The same patch is laid out once
and then remembered (`CACHED` patches), since the page of a held
submission is looked at again and again.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from errauto_daemon.web import diff, highlight
from errauto_daemon.web.diff import FileDiff, Line, PatchView

MAX_FILES = 100
MAX_LINES = 5000
FOLD_CHANGES = 400
FOLD_CONTEXT = 12
KEEP_CONTEXT = 3
COLOUR_LINES = 1000
CACHED = 16


@dataclass(frozen=True)
class Row:
    line: Line
    code: Markup | None = None  # the line's text coloured; None: shown as it is (escaped by the template)


@dataclass(frozen=True)
class Fold:
    """Unchanged lines, folded: one row that opens to show them."""

    rows: tuple[Row, ...]

    @property
    def first(self) -> Line:
        return self.rows[0].line

    @property
    def last(self) -> Line:
        return self.rows[-1].line


@dataclass(frozen=True)
class FileShown:
    diff: FileDiff
    parts: tuple[Row | Fold, ...]
    open: bool  # starts open; a file with many changes starts closed
    coloured: bool
    left_out: int = 0  # its lines not shown: past the patch's MAX_LINES


@dataclass(frozen=True)
class PatchShown:
    message: str
    files: tuple[FileShown, ...]
    more_files: int  # files of the patch not shown

    @property
    def total_files(self) -> int:
        return len(self.files) + self.more_files


@functools.lru_cache(maxsize=CACHED)
def of_text(text: str) -> PatchShown:
    """A patch's text as the page shows it (the same text is laid out once)."""
    return shown(diff.read(text))


def shown(view: PatchView) -> PatchShown:
    files: list[FileShown] = []
    lines_left, colour_left = MAX_LINES, COLOUR_LINES
    for f in view.files[:MAX_FILES]:
        count = len(f.lines)
        colour = count <= colour_left
        files.append(file_shown(f, colour=colour, limit=lines_left))
        lines_left = max(0, lines_left - count)
        colour_left -= count if files[-1].coloured else 0
    return PatchShown(view.message, tuple(files), max(0, len(view.files) - MAX_FILES))


def file_shown(f: FileDiff, *, colour: bool = True, limit: int = MAX_LINES) -> FileShown:
    lines = f.lines[:limit]
    code = highlight.colour_file(f) if colour and len(lines) == len(f.lines) else None
    rows = [Row(line, code[i] if code is not None else None) for i, line in enumerate(lines)]
    return FileShown(f, tuple(folded(rows)), f.added + f.removed <= FOLD_CHANGES, code is not None,
                     len(f.lines) - len(lines))


def folded(rows: Sequence[Row]) -> list[Row | Fold]:
    """The rows, each run of more than FOLD_CONTEXT context lines folded but for its ends."""
    out: list[Row | Fold] = []
    run: list[Row] = []
    for row in [*rows, None]:
        if row is not None and row.line.kind == "context":
            run.append(row)
            continue
        if len(run) > FOLD_CONTEXT:
            out += run[:KEEP_CONTEXT]
            out.append(Fold(tuple(run[KEEP_CONTEXT:-KEEP_CONTEXT])))
            out += run[-KEEP_CONTEXT:]
        else:
            out += run
        run = []
        if row is not None:
            out.append(row)
    return out
