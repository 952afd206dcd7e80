"""Fetching one ref from a remote (`git.fetch`), which merge.py and the GitHub route share."""
from __future__ import annotations

from pathlib import Path

import pytest

from errauto_daemon import git, github
from tests.helpers.gitrepo import GitRepo

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend


@pytest.fixture
def local_and_remote(tmp_path: Path) -> tuple[GitRepo, GitRepo, str]:
    local = GitRepo(tmp_path / "local")
    local.commit("base", {"a.txt": "a\n"})
    remote = GitRepo(tmp_path / "remote.git", bare=True)
    local.git("remote", "add", "origin", str(remote.path))
    local.git("push", "-q", "origin", "main")
    other = GitRepo(tmp_path / "other")
    other.git("pull", "-q", str(remote.path), "main")
    ahead = other.commit("ahead", {"b.txt": "b\n"})
    other.git("push", "-q", str(remote.path), "main")
    return local, remote, ahead


def test_fetch_returns_the_remote_tip_and_moves_no_branch(
        local_and_remote: tuple[GitRepo, GitRepo, str]) -> None:
    local, _, ahead = local_and_remote
    before = local.head("refs/heads/main")
    assert git.fetch(local.path, "origin", "refs/heads/main") == ahead
    assert local.git("cat-file", "-t", ahead).strip() == "commit"  # the objects are here now
    assert local.head("refs/heads/main") == before != ahead


def test_fetch_failure_carries_gits_last_line(local_and_remote: tuple[GitRepo, GitRepo, str]) -> None:
    local, _, _ = local_and_remote
    with pytest.raises(git.FetchFailed) as caught:
        git.fetch(local.path, "origin", "refs/heads/nope")
    assert "couldn't find remote ref refs/heads/nope" in caught.value.detail
    assert str(caught.value) == f"fetching refs/heads/nope from origin failed: {caught.value.detail}"


def test_the_github_route_says_which_branch_it_could_not_fetch(
        local_and_remote: tuple[GitRepo, GitRepo, str]) -> None:
    local, _, ahead = local_and_remote
    assert github.fetch(local.pygit2(), "origin", "main") == ahead
    with pytest.raises(github.GitHubError, match=r"^fetching nope from origin failed: .*nope"):
        github.fetch(local.pygit2(), "origin", "nope")
