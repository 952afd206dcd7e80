"""Finding and naming the user's repository: the helpers every stage shares.

A leaf: it imports nothing of errauto but its errors, so any module may use it.
"""
from __future__ import annotations

import os
import re
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


def remote_name(repo: pygit2.Repository, remote: str | None, url: str | None = None) -> str | None:
    """The repository's name among machines sharing one database: `url` when the configuration
    gives one (`remote_url`), else the URL of its push remote (`push = "origin"`), written one way
    whichever clone reads it (`normal_url`); None without either."""
    if url:
        return normal_url(url, repo.workdir or common_dir(repo))
    if not remote:
        return None
    try:
        found = repo.remotes[remote].url
    except (KeyError, ValueError):
        return None
    return normal_url(found, repo.workdir or common_dir(repo)) if found else None


def normal_url(url: str, base: str | Path) -> str:
    """A remote's URL written one way: a local path resolved (relative to `base`, as git does), a
    URL without a trailing slash or `.git`, so `git@host:team/app.git` and `git@host:team/app`
    are one repository."""
    url = url.strip()
    if url.startswith("file://") or ("://" not in url and not _SCP.match(url)):
        path = url[len("file://"):] if url.startswith("file://") else url
        return os.path.realpath(os.path.join(base, os.path.expanduser(path))).rstrip("/")
    url = url.rstrip("/")
    return url[:-len(".git")] if url.endswith(".git") else url


_SCP = re.compile(r"^[^/:]+:(?!//)")  # git's scp-like form, `user@host:path`
