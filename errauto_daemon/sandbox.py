"""What a check may see and do while it runs the patch's code.

`View` is the part of the file system one check needs beyond the read-only
system: its own worktree (writable), the git objects and git dir that
worktree reads (readable), and what must stay out of its sight whatever the
system mounts show (errauto's state and cache, the user's git dir).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class View:
    """The file system one check gets besides the read-only system.

    Applied in this order, each on top of the last: `hidden` paths become
    empty, then `readable` ones are shown read-only, then `writable` ones
    read-write (a worktree inside a hidden cache directory is still shown)."""

    writable: tuple[Path, ...]  # the check's worktree
    readable: tuple[Path, ...] = ()  # the git dir and object directories the worktree reads
    hidden: tuple[Path, ...] = ()  # errauto's state and cache, the user's git dir
