"""The GitHub route, end to end: real git, the real PyGithub, real HTTP on 127.0.0.1.

A bare repository stands in for the remote; tests/helpers/fake_github.py for GitHub.
"""
from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from errauto_daemon import config, github
from errauto_daemon.domain import PRState, State
from errauto_daemon.errors import ConfigError
from errauto_daemon.main import main
from errauto_daemon.store import Store, Submission
from tests.helpers.fake_github import AUTO_MERGE_NOT_ALLOWED, CLEAN_STATUS, FakeGitHub
from tests.helpers.gitrepo import CALC, PYTHON, GitRepo, config_toml, git, python_project

TOKEN = "ghp_errautoTestToken0123456789abcdefXYZ"
FIXED = CALC.replace("a - b", "a + b")
# Confidence 0.67 (lint fails): a pull request at pr_threshold 0.6, with auto-merge.
PR_PATCH = {"calc.py": FIXED + "#" * 90 + "\n"}
# Confidence 1.00: auto-merge.
CLEAN_PATCH = {"calc.py": FIXED}
# Confidence 1.00, but a protected path: a pull request without auto-merge.
PROTECTED_PATCH = {"calc.py": FIXED, "pyproject.toml": "[project]\nname = 'calc'\n"}


@dataclass
class World:
    tmp: Path
    fake: FakeGitHub
    remote: GitRepo
    capsys: pytest.CaptureFixture[str]
    project: GitRepo | None = None
    printed: list[str] = field(default_factory=list)

    def make_project(self, github_extra: str = "", *, token_env: str | None = None,
                     checks: str = "") -> GitRepo:
        section = (f'[github]\nrepo = "octo/project"\napi_url = "{self.fake.url}"\n'
                   'labels = ["errauto", "bot-fix"]\nrate_limit_wait = 3\nwrite_interval = 0\n'
                   + (f'token_env = "{token_env}"\n' if token_env else "") + github_extra)
        project = python_project(self.tmp / "project", config=config_toml(
            top="pr_threshold = 0.6\n", extra=checks + section))
        project.git("remote", "add", "origin", str(self.remote.path))
        project.git("push", "-q", "origin", "main")
        self.project = project
        return project

    def apply(self, edits: Mapping[str, str | None], *extra: str) -> tuple[int, dict[str, Any]]:
        assert self.project is not None
        patch = self.tmp / "fix.patch"
        patch.write_bytes(self.project.make_patch(edits))
        code = main(["apply", str(patch), "--repo", str(self.project.path), "--json", *extra])
        out, err = self.capsys.readouterr()
        self.printed += [out, err]
        assert out, f"exit {code}, no output; stderr: {err}"
        return code, json.loads(out)

    def show(self, sub_id: int) -> str:
        assert main(["queue", "show", str(sub_id)]) == 0
        out, err = self.capsys.readouterr()
        self.printed += [out, err]
        return out

    def events(self, sub_id: int, kind: str) -> list[str]:
        return [e["detail"] for e in Store().events(sub_id) if e["kind"] == kind]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> Iterator[World]:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    remote = GitRepo(tmp_path / "remote.git", bare=True)
    with FakeGitHub(remote.path, token=TOKEN) as fake:
        yield World(tmp_path, fake, remote, capsys)


# --------------------------------------------------------------------------
# the pull request route


def test_pull_request_is_pushed_opened_labelled_and_set_to_auto_merge(world: World) -> None:
    project = world.make_project()
    base = project.head()

    code, result = world.apply(PR_PATCH)

    assert code == 0, result
    assert result["state"] == "pr_open" and result["route"] == "pull_request"
    assert result["pr_url"] == f"{world.fake.web}/octo/project/pull/1"
    assert result["pr_number"] == 1 and result["pr_state"] == PRState.AUTO_MERGE
    assert "pull request #1 opened with auto-merge" in result["reason"]
    # The branch holds the validated commit: the validated tree on the validated base.
    head = world.remote.head("refs/heads/errauto/1")
    assert world.remote.head(f"{head}^") == base == result["base_commit"]
    assert world.remote.head(f"{head}^{{tree}}") == result["result_tree"]
    assert world.remote.head("refs/heads/main") == base  # nothing merged by itself
    assert project.head("main") == base

    (create,) = world.fake.calls("POST", "/repos/octo/project/pulls")
    assert create.headers["authorization"] == f"token {TOKEN}"
    assert create.body["head"] == "errauto/1" and create.body["base"] == "main"
    assert create.body["title"] == "fix"
    body = create.body["body"]
    assert "**Confidence 0.67**" in body and "auto-merge 0.95" in body
    assert "| `tests` | passed (exit 0) |" in body and "| `lint` | failed (exit 1) |" in body
    assert "**Auto-merge: on.**" in body
    assert "| `calc.py` | 2 | 1 |" in body and "(+2 −1)" in body
    assert "**Source:** `cli` (`fix.patch`)" in body
    assert "**To approve**" in body and "**To reject**, close it" in body
    (labels,) = world.fake.calls("POST", "/repos/octo/project/issues/1/labels")
    assert labels.body == ["errauto", "bot-fix"]
    (mutation,) = world.fake.calls("POST", "/graphql")
    assert "enablePullRequestAutoMerge" in mutation.body["query"]
    assert mutation.body["variables"]["input"] == {
        "pullRequestId": "PR_kwDO0001", "mergeMethod": "MERGE", "expectedHeadOid": head}
    assert world.fake.pulls[1]["auto_merge"]["merge_method"] == "merge"
    assert world.fake.calls("PUT", ".*") == []

    shown = world.show(result["id"])
    assert f"pull request: {world.fake.web}/octo/project/pull/1 (open, auto-merge enabled)" in shown


def test_protected_path_opens_a_pull_request_without_auto_merge(world: World) -> None:
    world.make_project()

    code, result = world.apply(PROTECTED_PATCH)

    assert code == 0, result
    assert result["state"] == "pr_open" and result["pr_state"] == PRState.OPEN
    assert "clears auto-merge, but touches protected paths (pyproject.toml)" in result["reason"]
    assert "without auto-merge: a person must merge it" in result["reason"]
    assert world.fake.calls("POST", "/graphql") == []
    assert world.fake.pulls[1]["auto_merge"] is None
    (create,) = world.fake.calls("POST", "/repos/octo/project/pulls")
    assert "**Auto-merge: off.** A person must merge it" in create.body["body"]
    assert "Gate: touches protected paths (pyproject.toml)" in create.body["body"]
    assert "| `pyproject.toml` | 2 | 0 |" in create.body["body"]
    assert "(open, auto-merge off)" in world.show(result["id"])


@pytest.mark.parametrize("refusal", ["not allowed", "clean status"])
def test_auto_merge_refused_leaves_the_pull_request_open_and_raises_an_alert(
        world: World, refusal: str) -> None:
    world.make_project()
    if refusal == "not allowed":
        world.fake.allow_auto_merge = False
        message = AUTO_MERGE_NOT_ALLOWED
    else:
        # The base branch requires nothing, so GitHub would merge it now: not
        # for a patch below the auto-merge threshold. A person must look.
        world.fake.auto_merge_error = message = CLEAN_STATUS

    code, result = world.apply(PR_PATCH)

    assert code == 0, result
    assert result["state"] == "pr_open" and result["pr_state"] == PRState.AUTO_MERGE_FAILED
    assert f"auto-merge could not be enabled: enabling auto-merge on pull request #1: GitHub answered " \
           f"400 {message}" in result["reason"]
    if refusal == "clean status":
        assert "auto-merge needs required status checks on the base branch" in result["reason"]
    (alert,) = world.events(result["id"], "alert")
    assert message in alert
    assert world.fake.calls("PUT", ".*") == []
    assert world.fake.pulls[1]["state"] == "open"
    assert "(open, auto-merge could not be enabled)" in world.show(result["id"])


def test_an_open_pull_request_for_the_branch_is_found_and_reused(world: World) -> None:
    world.make_project()
    world.fake.add_pull("errauto/1", title="left by an interrupted attempt")

    code, result = world.apply(PR_PATCH)

    assert code == 0, result
    assert result["pr_number"] == 1 and "pull request #1 updated with auto-merge" in result["reason"]
    assert world.fake.calls("POST", "/repos/octo/project/pulls") == []
    (edit,) = world.fake.calls("PATCH", "/repos/octo/project/pulls/1")
    assert "**Confidence 0.67**" in edit.body["body"]
    assert len(world.fake.pulls) == 1 and world.fake.pulls[1]["title"] == "fix"


def test_422_already_exists_is_answered_by_finding_the_pull_request(world: World) -> None:
    world.make_project()
    world.fake.add_pull("errauto/1")
    # GitHub's list lags behind: the first look finds nothing, the create is refused.
    world.fake.fail("GET", "/repos/octo/project/pulls", 200, [])

    code, result = world.apply(PR_PATCH)

    assert code == 0, result
    assert result["state"] == "pr_open" and result["pr_number"] == 1
    assert len(world.fake.calls("POST", "/repos/octo/project/pulls")) == 1
    assert len(world.fake.calls("GET", "/repos/octo/project/pulls")) == 2
    assert len(world.fake.pulls) == 1


@pytest.mark.parametrize("carried_out", [True, False], ids=["created-then-500", "500-not-created"])
def test_500_on_create_never_opens_a_second_pull_request(world: World, carried_out: bool) -> None:
    world.make_project()
    world.fake.fail("POST", "/repos/octo/project/pulls", 500, {"message": "Server Error"},
                    carry_out=carried_out)

    code, result = world.apply(PR_PATCH)

    assert code == 0, result
    assert result["state"] == "pr_open" and result["pr_number"] == 1
    assert len(world.fake.pulls) == 1
    # Never re-sent blindly: looked up first, created again only when not there.
    creates = world.fake.calls("POST", "/repos/octo/project/pulls")
    assert len(creates) == (1 if carried_out else 2)
    assert world.fake.pulls[1]["labels"] == ["errauto", "bot-fix"]


def test_500_that_does_not_end_holds_the_patch_for_review_with_an_alert(world: World) -> None:
    world.make_project()
    world.fake.fail("POST", "/repos/octo/project/pulls", 502, {"message": "Bad Gateway"}, times=None)

    code, result = world.apply(PR_PATCH)

    assert code == 1, result
    assert result["state"] == "awaiting_review" and result["route"] == "review"
    assert "GitHub route failed, held for review: opening a pull request for errauto/1: " \
           "GitHub answered 502 Bad Gateway" in result["reason"]
    assert len(world.fake.calls("POST", "/repos/octo/project/pulls")) == github.CREATE_ATTEMPTS
    assert world.fake.pulls == {}
    assert world.events(result["id"], "alert")


def test_a_failed_get_is_retried_by_the_transport(world: World) -> None:
    world.make_project()
    world.fake.fail("GET", "/repos/octo/project", 503, {"message": "Service Unavailable"})

    code, result = world.apply(PR_PATCH)

    assert code == 0, result
    assert len(world.fake.calls("GET", "/repos/octo/project")) == 2


def test_rejected_token_is_one_clear_reason_and_nothing_is_pushed(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.make_project()
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_notTheRightOne0000")

    code, result = world.apply(PR_PATCH)

    assert code == 1, result
    assert result["state"] == "awaiting_review" and result["route"] == "review"
    assert result["reason"].endswith(
        "GitHub route failed, held for review: GitHub rejected the token in GITHUB_TOKEN (401 Bad credentials)")
    assert [r.path for r in world.fake.requests] == ["/repos/octo/project"]
    assert world.remote.git("branch", "--list", "errauto/*") == ""
    (alert,) = world.events(result["id"], "alert")
    assert "401 Bad credentials" in alert and "ghp_notTheRightOne0000" not in alert


def test_missing_token_is_one_clear_reason_and_no_request(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.make_project()
    monkeypatch.delenv("GITHUB_TOKEN")

    code, result = world.apply(PR_PATCH)

    assert code == 1, result
    assert result["reason"].endswith("no GitHub token: the environment variable GITHUB_TOKEN "
                                     "(github.token_env) is not set")
    assert world.fake.requests == []


@pytest.mark.parametrize("status, message, headers", [
    (403, "API rate limit exceeded for user ID 1.",  # primary: wait until the reset
     lambda: {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 1)}),
    (429, "You have exceeded a secondary rate limit.", lambda: {"Retry-After": "1"}),
], ids=["primary-reset", "429-retry-after"])
def test_rate_limit_is_waited_out_then_the_create_is_sent_again(
        world: World, status: int, message: str, headers: Callable[[], dict[str, str]]) -> None:
    world.make_project()
    world.fake.fail("POST", "/repos/octo/project/pulls", status, {"message": message}, headers=headers())
    started = time.monotonic()

    code, result = world.apply(PR_PATCH)

    assert code == 0, result
    assert time.monotonic() - started >= 1.0
    assert len(world.fake.calls("POST", "/repos/octo/project/pulls")) == 2
    assert len(world.fake.pulls) == 1


def test_rate_limit_longer_than_the_bound_holds_for_review_without_waiting(world: World) -> None:
    world.make_project()
    world.fake.fail("GET", "/repos/octo/project", 403, {"message": "API rate limit exceeded for user ID 1."},
                    headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 3600)},
                    times=None)
    started = time.monotonic()

    code, result = world.apply(PR_PATCH)

    assert code == 1, result
    assert time.monotonic() - started < 3
    assert "GitHub's rate limit asks to wait" in result["reason"]
    assert "longer than github.rate_limit_wait (3s)" in result["reason"]
    assert len(world.fake.requests) == 1
    assert world.events(result["id"], "alert")


def test_local_commits_missing_from_the_remote_hold_the_pull_request(world: World) -> None:
    project = world.make_project()
    project.commit("only here", {"NOTES": "local\n"})

    code, result = world.apply(PR_PATCH)

    assert code == 1, result
    assert "main has commits that origin/main does not" in result["reason"]
    assert world.remote.git("branch", "--list", "errauto/*") == ""
    assert world.fake.calls("POST", "/repos/octo/project/pulls") == []


# --------------------------------------------------------------------------
# following pull requests


def test_follow_up_records_merged_and_closed_pull_requests_at_a_bounded_rate(world: World) -> None:
    world.make_project()
    _, first = world.apply(PR_PATCH)
    _, second = world.apply({"calc.py": FIXED.replace("return -a", "return 0 - a") + "#" * 90 + "\n"})
    assert (first["pr_number"], second["pr_number"]) == (1, 2)
    store = Store()
    reads = lambda: len(world.fake.calls("GET", r"/repos/octo/project/pulls/\d+"))  # noqa: E731

    assert github.follow_open_pull_requests(store, limit=1, min_interval=0) == 0
    assert reads() == 1
    assert github.follow_open_pull_requests(store, limit=5, min_interval=3600) == 0
    assert reads() == 1  # each pull request at most once per min_interval

    merge_commit = world.fake.merge_pull(1)
    world.fake.close_pull(2)
    assert github.follow_open_pull_requests(store, limit=5, min_interval=0) == 2

    merged, closed = store.get(first["id"]), store.get(second["id"])
    assert merged.state == "merged" and merged.merged_commit == merge_commit
    assert merged.pr_state == PRState.MERGED and "pull request #1 was merged on GitHub" in (merged.reason or "")
    assert closed.state == "rejected" and closed.pr_state == PRState.CLOSED
    assert closed.reason == "pull request #2 was closed without merging"
    assert "(merged)" in world.show(first["id"])
    assert github.follow_open_pull_requests(store, limit=5, min_interval=0) == 0


def test_a_pull_request_merged_on_github_moves_its_inbox_file(world: World) -> None:
    from errauto_daemon import inbox

    project = world.make_project()
    root = str(project.path)
    folder = inbox.ensure_inbox(root)
    assert folder is not None
    (folder / "fix.patch").write_bytes(project.make_patch(PR_PATCH))
    store = Store()
    taken = inbox.take(store, root, folder / "fix.patch")
    assert taken is not None
    code, result = world.apply(PR_PATCH)  # the same patch: `apply` decides it
    assert code == 0 and result["state"] == "pr_open"
    assert sorted(p.name for p in (folder / "pull-requests").iterdir()) == [f"{taken.id}-fix.patch"]

    world.fake.merge_pull(1)
    decided: list[int] = []

    def on_decided(sub: Submission) -> None:
        decided.append(sub.id)
        inbox.settle(store, sub)

    assert github.follow_open_pull_requests(store, limit=5, min_interval=0, on_decided=on_decided) == 1
    assert decided == [taken.id]
    assert sorted(p.name for p in (folder / "merged").iterdir()) == [f"{taken.id}-fix.patch"]
    assert not any((folder / "pull-requests").iterdir())


# --------------------------------------------------------------------------
# merge_via_pr: the auto_merge route through a pull request


def test_merge_via_pr_merges_at_once_with_the_validated_head_pinned(world: World) -> None:
    project = world.make_project('merge_via_pr = true\nmerge_method = "squash"\n')
    base = project.head()

    code, result = world.apply(CLEAN_PATCH)

    assert code == 0, result
    assert result["state"] == "merged" and result["route"] == "auto_merge"
    assert result["pr_number"] == 1 and result["pr_state"] == PRState.MERGED
    assert "merged through pull request #1" in result["reason"]
    head = world.remote.head("refs/heads/errauto/1")
    (merge,) = world.fake.calls("PUT", "/repos/octo/project/pulls/1/merge")
    assert merge.body == {"sha": head, "merge_method": "squash"}
    (create,) = world.fake.calls("POST", "/repos/octo/project/pulls")
    assert "**Merged by errauto at once**" in create.body["body"]
    assert world.fake.calls("POST", "/graphql") == []
    merged = world.remote.head("refs/heads/main")
    assert merged == result["merged_commit"]
    assert world.remote.head(f"{merged}^{{tree}}") == result["result_tree"]
    assert world.remote.head(f"{merged}^") == base
    # The local target follows GitHub's merge, work tree included.
    assert project.head("main") == merged and "a + b" in project.read("calc.py")


def test_409_on_merge_is_validated_again_and_never_merged_blind(world: World) -> None:
    project = world.make_project("merge_via_pr = true\n")
    foreign: list[str] = []
    pushed: list[str] = []

    def someone_pushes_to_the_branch() -> None:
        remote = world.remote
        pushed.append(remote.head("refs/heads/errauto/1"))
        tree = remote.head("refs/heads/errauto/1^{tree}")
        commit = remote.git("commit-tree", tree, "-p", "refs/heads/errauto/1", "-m", "not validated").strip()
        remote.git("update-ref", "refs/heads/errauto/1", commit)
        foreign.append(commit)

    world.fake.on("PUT", "/repos/octo/project/pulls/1/merge", someone_pushes_to_the_branch)

    code, result = world.apply(CLEAN_PATCH)

    assert code == 0, result
    assert result["state"] == "merged"
    head = world.remote.head("refs/heads/errauto/1")
    merges = world.fake.calls("PUT", "/repos/octo/project/pulls/1/merge")
    # Pinned both times to what errauto pushed, never to the foreign commit.
    assert [m.body["sha"] for m in merges] == [pushed[0], head]
    assert foreign[0] not in (pushed[0], head)
    (revalidate,) = world.events(result["id"], "revalidate")
    assert "the head of pull request #1 moved" in revalidate and "409" in revalidate
    main_tip = world.remote.head("refs/heads/main")
    assert world.remote.git("rev-list", main_tip).count(foreign[0]) == 0
    assert world.remote.head(f"{main_tip}^{{tree}}") == result["result_tree"]
    assert project.head("main") == main_tip


def test_merge_via_pr_validates_again_when_the_remote_target_moved(world: World) -> None:
    project = world.make_project("merge_via_pr = true\n")
    other = world.tmp / "other"
    git(world.tmp, "clone", "-q", str(world.remote.path), str(other))
    (other / "NOTES").write_text("pushed by someone else\n")
    for args in (("add", "NOTES"), ("commit", "-q", "-m", "elsewhere"), ("push", "-q", "origin", "main")):
        git(other, *args)
    moved = world.remote.head("refs/heads/main")

    code, result = world.apply(CLEAN_PATCH)

    assert code == 0, result
    assert result["state"] == "merged" and result["base_commit"] == moved
    (revalidate,) = world.events(result["id"], "revalidate")
    assert revalidate == f"origin/main moved to {moved[:12]}"
    assert project.head("main") == result["merged_commit"] == world.remote.head("refs/heads/main")
    assert project.read("NOTES") == "pushed by someone else\n"


def test_merge_via_pr_records_the_merge_even_when_the_local_checkout_cannot_follow(world: World) -> None:
    project = world.make_project("merge_via_pr = true\n")
    base = project.head()
    patch = world.tmp / "fix.patch"
    patch.write_bytes(project.make_patch(CLEAN_PATCH))
    project.write("calc.py", CALC + "# my local edit\n")  # in the way of the merge

    code = main(["apply", str(patch), "--repo", str(project.path), "--json"])
    result = json.loads(world.capsys.readouterr().out)

    assert code == 0, result
    assert result["state"] == "merged" and result["merged_commit"] == world.remote.head("refs/heads/main")
    assert "merged through pull request #1; local main did not follow: the target is checked out" \
        in result["reason"]
    assert project.head("main") == base and project.read("calc.py").endswith("# my local edit\n")


def test_merge_refused_by_github_falls_back_to_auto_merge_and_alerts(world: World) -> None:
    world.make_project("merge_via_pr = true\n")
    world.fake.fail("PUT", "/repos/octo/project/pulls/1/merge", 405,
                    {"message": "Required status check \"ci\" is expected."})

    code, result = world.apply(CLEAN_PATCH)

    assert code == 0, result
    assert result["state"] == "pr_open" and result["route"] == "pull_request"
    assert result["pr_state"] == PRState.AUTO_MERGE
    assert "merging pull request #1 at once failed" in result["reason"]
    assert "auto-merge enabled instead" in result["reason"]
    assert world.fake.pulls[1]["auto_merge"] is not None
    assert world.events(result["id"], "alert")


# --------------------------------------------------------------------------
# the token


def test_the_token_is_never_written_anywhere(
        world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setenv("GH_BOT_TOKEN", TOKEN)
    env_check = (f'[checks.env]\ncommand = ["{PYTHON}", "-c", "import os; print(sorted(os.environ.items()))"]\n'
                 "weight = 0\n")
    world.make_project(token_env="GH_BOT_TOKEN", checks=env_check)
    debug_log = tmp_path / "state" / "log" / "debug.log"
    debug_log.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(debug_log)
    root, pygithub = logging.getLogger(), logging.getLogger("github")
    levels = root.level, pygithub.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    pygithub.setLevel(logging.DEBUG)  # PyGithub logs every request, headers included, at DEBUG
    try:
        # GitHub echoing the token back in an error must not put it anywhere.
        world.fake.fail("POST", "/repos/octo/project/pulls", 500, {"message": f"boom near token {TOKEN}"},
                        times=None)
        code, failed = world.apply(PR_PATCH)
        assert code == 1 and "boom near token ***" in failed["reason"]
        world.fake.faults.clear()
        code, opened = world.apply({"calc.py": FIXED + "#" * 95 + "\n"})
        assert code == 0, opened
        world.show(failed["id"])
        world.show(opened["id"])
        assert main(["queue", "list", "--json"]) == 0
        world.printed += list(world.capsys.readouterr())
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        pygithub.setLevel(levels[1])
        handler.close()

    # It was used: every request carried it.
    assert {r.headers.get("authorization") for r in world.fake.requests} == {f"token {TOKEN}"}
    logs = list((tmp_path / "state" / "checks").rglob("*-env.log"))
    assert logs and all("PATH" in p.read_text() for p in logs)  # the check did print its environment
    logged = debug_log.read_text()
    assert "token (oauth token removed)" in logged and "GitHub answered 500 boom near token ***" in logged
    gc.collect()  # close every SQLite connection: the WAL is checkpointed into errauto.db
    needle = TOKEN.encode()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [str(p) for p in files if needle in _read(p)] == []
    store = Store()
    if store.path is None:  # a server: every row of every table errauto has there
        tables = [r[0] for r in store.sql("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = current_schema()")]
        assert "submissions" in tables
        assert [t for t in tables if TOKEN in repr(store.sql(f"SELECT * FROM {t}"))] == []
    else:
        assert any(p.name == "errauto.db" for p in files)
    assert not any(TOKEN in text for text in world.printed)
    assert not any(TOKEN in (e["detail"] or "") for sub in (failed, opened) for e in Store().events(sub["id"]))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:  # SQLite removes -wal/-shm files when the last connection closes
        return b""


# --------------------------------------------------------------------------
# pieces


def test_the_transport_retries_only_idempotent_requests() -> None:
    retry = github.transport_retry()
    assert retry.is_retry("GET", 502)
    for method in ("POST", "PUT", "PATCH"):
        assert not retry.is_retry(method, 500)
    assert not retry.is_retry("GET", 403)  # rate limits are waited out by the client, every method


@pytest.mark.parametrize("status, headers, message, expected", [
    (429, {"retry-after": "7"}, "", 7.0),
    (403, {"retry-after": "2"}, "You have exceeded a secondary rate limit", 2.0),
    (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1030"}, "API rate limit exceeded", 31.0),
    (403, {}, "You have exceeded a secondary rate limit", 60.0),
    (429, {}, "", 60.0),
    (403, {}, "Resource not accessible by integration", None),
    (500, {"retry-after": "1"}, "", None),
])
def test_rate_limit_wait(status: int, headers: dict[str, str], message: str, expected: float | None) -> None:
    assert github.rate_limit_wait(status, headers, message, now=1000.0) == expected


def test_pull_request_body_does_not_let_patch_text_mention_people_or_break_tables() -> None:
    from errauto_daemon.store import Submission

    sub = Submission(
        id=7, repo="/r", target="main", source="inbox", source_detail="a|b`c.patch", title="Fix @everyone",
        author="Mallory <@admins>", note=None, patch_sha256="0" * 64, dedup_key="k", state=State.VALIDATING,
        route=None, confidence=None, explanation=None, reason=None, base_commit=None, result_tree=None,
        merged_commit=None, merge_intent=None, pr_url=None, pr_number=None, pr_state=None, attempts=1,
        created_at=0.0, updated_at=0.0, decided_at=None)
    explanation = {"confidence": 0.9, "thresholds": {"auto_merge": 0.95, "pull_request": 0.8},
                   "summary": "0.90: ping @someone", "parts": [], "gates": [], "notes": ["<img src=x>"],
                   "base": "ab" * 20}
    body = github.pull_request_body(sub, explanation, [github.FileChange("x|y.py", 1, 0, False)],
                                    merged_by=github.BY_AUTO_MERGE)
    assert "@someone" not in body and "@\u200bsomeone" in body
    assert "<img" not in body
    assert "`x\\|y.py`" in body and "`a\\|b'c.patch`" in body
    assert github.pull_request_title(sub) == "Fix @everyone"


# --------------------------------------------------------------------------
# configuration


@pytest.mark.parametrize("text, key", [
    ('[github]\napi_url = "https://ghe.example.com/api/v3"\n', "github.repo"),
    ('[github]\nrepo = "nope"\n', "github.repo"),
    ('[github]\nrepo = "a/.."\n', "github.repo"),
    ('[github]\nrepo = "a/b"\ncolour = 1\n', "github.colour"),
    ('[github]\nrepo = "a/b"\napi_url = "ftp://ghe.example.com"\n', "github.api_url"),
    ('[github]\nrepo = "a/b"\napi_url = "http://ghe.example.com/api/v3"\n', "github.api_url"),
    ('[github]\nrepo = "a/b"\napi_url = "https://me:pw@ghe.example.com/api/v3"\n', "github.api_url"),
    ('[github]\nrepo = "a/b"\ntoken_env = "my token"\n', "github.token_env"),
    ('[github]\nrepo = "a/b"\nremote = "--upload-pack=evil"\n', "github.remote"),
    ('[github]\nrepo = "a/b"\nmerge_method = "octopus"\n', "github.merge_method"),
    ('[github]\nrepo = "a/b"\nlabels = "errauto"\n', "github.labels"),
    ('[github]\nrepo = "a/b"\nlabels = [""]\n', "github.labels"),
    ('[github]\nrepo = "a/b"\nmerge_via_pr = "yes"\n', "github.merge_via_pr"),
    ('[github]\nrepo = "a/b"\nrate_limit_wait = -1\n', "github.rate_limit_wait"),
    ('[github]\nrepo = "a/b"\nwrite_interval = "fast"\n', "github.write_interval"),
    ('github = "a/b"\n', "github"),
])
def test_bad_github_config_fails_with_one_line_naming_the_key(repo: GitRepo, text: str, key: str) -> None:
    repo.commit("config", {".errauto.toml": 'target = "main"\n' + text})
    with pytest.raises(ConfigError) as info:
        config.load(repo.pygit2())
    assert f" {key} " in str(info.value) and "\n" not in str(info.value)


def test_github_config_from_pyproject_with_an_enterprise_url(repo: GitRepo) -> None:
    repo.commit("config", {"pyproject.toml": (
        '[tool.errauto.github]\nrepo = "octo/project"\napi_url = "https://ghe.example.com/api/v3/"\n'
        'token_env = "GHE_TOKEN"\nlabels = ["a", "a", "b"]\n')})
    cfg = config.load(repo.pygit2())
    assert cfg.github == config.GithubConfig(
        repo="octo/project", api_url="https://ghe.example.com/api/v3", token_env="GHE_TOKEN", labels=("a", "b"))
    assert "GHE_TOKEN" in cfg.secrets() and "GITHUB_TOKEN" in cfg.secrets()
    assert config.with_thresholds(cfg, 0.9, 0.5).github == cfg.github


def test_rate_limit_waits_are_bounded_in_number_too() -> None:
    from github import GithubException

    waits: list[float] = []
    with github.Client(config.GithubConfig(repo="o/r"), "ghp_x", sleep=waits.append) as client:
        def limited() -> None:
            raise GithubException(429, {"message": "slow down"}, {"Retry-After": "0"})

        with pytest.raises(github.RateLimited, match="still rate limited after 5 waits"):
            client._call("asking", limited)
    assert waits == [0.0] * github.RATE_LIMIT_ROUNDS
