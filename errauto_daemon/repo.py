"""Finding and naming the user's repository: the helpers every stage shares.

A leaf: it imports nothing of errauto but its errors, so any module may use it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from errauto_daemon.errors import FatalError

if TYPE_CHECKING:  # imported where used: the server hook must start without it
    import pygit2


def open_repo(path: str | Path) -> pygit2.Repository:
    import pygit2

    found = pygit2.discover_repository(str(path))
    if found is None:
        raise FatalError(f"not a git repository: {path}")
    return pygit2.Repository(found)


def repo_root(repo: pygit2.Repository) -> str:
    """How errauto names a repository: its work tree, or its git dir if bare."""
    return os.path.realpath(repo.workdir if repo.workdir else repo.path).rstrip("/")


def common_dir(repo: pygit2.Repository) -> str:
    """The main repository's git dir (a linked worktree's commondir)."""
    gitdir = Path(repo.path)
    commondir = gitdir / "commondir"
    if commondir.is_file():
        return str((gitdir / commondir.read_text().strip()).resolve())
    return str(gitdir.resolve())
