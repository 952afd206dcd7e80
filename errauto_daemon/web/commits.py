"""A commit of a repository errauto knows, read for showing: its message, author and diff.

Read with pygit2 from the repository a submission names (never a path
from a request), and only a commit reachable from the submission's
target: the pages show what was merged, not whatever else the repository
holds.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pygit2

from errauto_daemon import config as config_mod
from errauto_daemon.config import GithubConfig
from errauto_daemon.errors import FatalError
from errauto_daemon.repo import open_repo, repo_root
from errauto_daemon.web.diffview import MAX_FILES

COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class CommitShown:
    id: str
    message: str
    author: str
    when: float
    parents: tuple[str, ...]
    patch: str  # its diff against its first parent (the empty tree for a root commit), in git's format
    more_files: int = 0  # files it changes beyond those in `patch`


def read(repo_path: str, target: str, commit_id: str) -> CommitShown | None:
    """The commit, if `commit_id` is a full commit id reachable from `target` in that repository."""
    if not COMMIT_ID.fullmatch(commit_id):
        return None
    try:
        repo = _exactly(repo_path)
        commit = repo.get(commit_id)
        tip = repo.references.get("refs/heads/" + target)
        if not isinstance(commit, pygit2.Commit) or tip is None:
            return None
        tip_id = tip.peel(pygit2.Commit).id
        if commit.id != tip_id and not repo.descendant_of(tip_id, commit.id):
            return None
        return _shown(repo, commit)
    except (FatalError, pygit2.GitError, ValueError, KeyError):
        return None


def _exactly(repo_path: str) -> pygit2.Repository:
    """The repository at `repo_path`, not one found in a folder above it when it is gone."""
    repo = open_repo(repo_path)
    if repo_root(repo) != os.path.realpath(repo_path).rstrip("/"):
        raise FatalError(f"not a git repository: {repo_path}")
    return repo


def _shown(repo: pygit2.Repository, commit: pygit2.Commit) -> CommitShown:
    if commit.parents:
        changes = repo.diff(commit.parents[0], commit)
    else:
        changes = commit.tree.diff_to_tree(swap=True)
    changes.find_similar()
    # Only the files the page can show are turned into text: a commit on the target may be huge.
    texts = [(patch.text or "") if patch is not None else "" for _, patch in zip(range(MAX_FILES), changes)]
    author = commit.author
    return CommitShown(str(commit.id), commit.message, f"{author.name} <{author.email}>", float(author.time),
                       tuple(str(p) for p in commit.parent_ids), "".join(texts), max(0, len(changes) - MAX_FILES))


def github_commit_url(repo_path: str, target: str, commit_id: str) -> str | None:
    """The commit's page on GitHub when the repository's configuration names a GitHub repository."""
    try:
        github = config_mod.load(_exactly(repo_path), target).github
    except (FatalError, pygit2.GitError, OSError):
        return None  # a configuration errauto cannot read: the local page only
    return commit_url(github, commit_id) if github is not None else None


def commit_url(github: GithubConfig, commit_id: str) -> str | None:
    """github.com's commit page, or a GitHub Enterprise server's (its API lives under /api/v3)."""
    api = urlsplit(github.api_url)
    if api.scheme != "https" or not api.hostname:
        return None
    host = "github.com" if api.hostname == "api.github.com" else api.netloc
    return f"https://{host}/{github.repo}/commit/{commit_id}"
