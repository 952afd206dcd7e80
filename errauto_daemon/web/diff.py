"""A patch as the submission page shows it: its message, then each file's hunks with line numbers.

Only for showing: a line the parser does not understand is kept as context
text rather than refused (the patch was parsed strictly at intake already).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class Line:
    kind: str  # "add", "del", "context", "hunk" (an @@ header) or "note" (`\ No newline at end of file`)
    text: str
    old: int | None = None
    new: int | None = None


@dataclass
class FileDiff:
    old_name: str | None = None
    new_name: str | None = None
    header: list[str] = field(default_factory=list)  # `diff --git`, `index`, mode lines
    lines: list[Line] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.new_name or self.old_name or self._git_name() or "(unnamed)"

    def _git_name(self) -> str | None:
        """The name on the `diff --git a/X b/X` line: all a binary file or a mode change has."""
        first = self.header[0] if self.header else ""
        if not first.startswith("diff --git ") or " b/" not in first:
            return None
        return first.rsplit(" b/", 1)[1]

    @property
    def added(self) -> int:
        return sum(1 for line in self.lines if line.kind == "add")

    @property
    def removed(self) -> int:
        return sum(1 for line in self.lines if line.kind == "del")


@dataclass(frozen=True)
class PatchView:
    message: str  # what comes before the first file: mail headers, the commit message
    files: tuple[FileDiff, ...]


def _name(text: str) -> str | None:
    name = text.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    return name[2:] if name[:2] in ("a/", "b/") else name


class _Reader:
    def __init__(self) -> None:
        self.message: list[str] = []
        self.files: list[FileDiff] = []
        self.old = 0
        self.new = 0
        self.old_left = 0  # lines of the hunk still to come, on each side
        self.new_left = 0
        self.in_hunk = False

    def feed(self, line: str) -> None:
        if line.startswith("diff --git ") or (line.startswith("--- ") and not self.in_hunk):
            self._file_start(line)
        elif not self.files:
            self.message.append(line)
        elif line.startswith("+++ ") and not self.in_hunk:
            self.files[-1].new_name = _name(line[4:])
        elif match := _HUNK.match(line):
            self.old, self.new = int(match[1]), int(match[3])
            self.old_left = int(match[2]) if match[2] is not None else 1
            self.new_left = int(match[4]) if match[4] is not None else 1
            self.in_hunk = True
            self.files[-1].lines.append(Line("hunk", line))
        elif line.startswith("\\") and self.files[-1].lines:
            self.files[-1].lines.append(Line("note", line))
        elif self.in_hunk:
            self._hunk_line(line)
        else:
            self.files[-1].header.append(line)

    def _file_start(self, line: str) -> None:
        if line.startswith("diff --git ") or not self.files or self.files[-1].lines or \
                self.files[-1].old_name is not None:
            self.files.append(FileDiff())
        current = self.files[-1]
        self.in_hunk = False
        if line.startswith("--- "):
            current.old_name = _name(line[4:])
        else:
            current.header.append(line)

    def _hunk_line(self, line: str) -> None:
        lines = self.files[-1].lines
        if line[:1] not in ("+", "-", " ", ""):
            self.in_hunk = False  # a hunk shorter than its header said
            self.files[-1].header.append(line)
            return
        if line.startswith("+"):
            lines.append(Line("add", line[1:], new=self.new))
            self.new, self.new_left = self.new + 1, self.new_left - 1
        elif line.startswith("-"):
            lines.append(Line("del", line[1:], old=self.old))
            self.old, self.old_left = self.old + 1, self.old_left - 1
        else:
            lines.append(Line("context", line[1:], old=self.old, new=self.new))
            self.old, self.old_left = self.old + 1, self.old_left - 1
            self.new, self.new_left = self.new + 1, self.new_left - 1
        # Past its last line, what follows is the next file, a mail signature or trailing text.
        self.in_hunk = self.old_left > 0 or self.new_left > 0


def read(text: str) -> PatchView:
    """The files of a unified diff (git's or plain), in order, with each line's old and new number."""
    reader = _Reader()
    for line in text.splitlines():
        reader.feed(line)
    return PatchView("\n".join(reader.message).strip("\n"), tuple(reader.files))
