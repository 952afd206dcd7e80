"""What the page shows of a patch: which files, open or closed, which lines folded, which coloured.

Bounded so a huge patch costs a bounded page: at most `MAX_FILES` files
(a note says how many more there are); a file with more than
`FOLD_CHANGES` changed lines starts closed; a run of more than
`FOLD_CONTEXT` unchanged lines shows its first and last `KEEP_CONTEXT`
and folds the rest; a file's diff with more than `COLOUR_FILE_LINES`
lines, or any file of a patch with more than `COLOUR_PATCH_LINES`, is
shown without colours.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from errauto_daemon.web import highlight
from errauto_daemon.web.diff import FileDiff, Line, PatchView

MAX_FILES = 100
FOLD_CHANGES = 400
FOLD_CONTEXT = 12
KEEP_CONTEXT = 3
COLOUR_FILE_LINES = 1000
COLOUR_PATCH_LINES = 3000


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


@dataclass(frozen=True)
class PatchShown:
    message: str
    files: tuple[FileShown, ...]
    more_files: int  # files of the patch not shown

    @property
    def total_files(self) -> int:
        return len(self.files) + self.more_files


def shown(view: PatchView) -> PatchShown:
    files = view.files[:MAX_FILES]
    colour = sum(len(f.lines) for f in files) <= COLOUR_PATCH_LINES
    return PatchShown(view.message, tuple(file_shown(f, colour=colour) for f in files),
                      max(0, len(view.files) - MAX_FILES))


def file_shown(f: FileDiff, *, colour: bool = True) -> FileShown:
    code = highlight.colour_file(f) if colour and len(f.lines) <= COLOUR_FILE_LINES else None
    rows = [Row(line, code[i] if code is not None else None) for i, line in enumerate(f.lines)]
    return FileShown(f, tuple(folded(rows)), f.added + f.removed <= FOLD_CHANGES, code is not None)


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
