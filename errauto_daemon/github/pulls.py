"""The pull requests errauto opens: pushing `errauto/<id>`, opening the pull
request exactly once, and following it until GitHub merges or closes it.

Pushes of `errauto/*` branches are made here; pushes of the target itself
belong to merge.py. A branch has at most one open pull request: before
creating one, the open pull request for `errauto/<id>` is looked up and
reused; a 422 "A pull request already exists" means the same, and is
answered by looking again; after a create whose outcome is unknown (a 5xx,
a timeout) the branch is looked up before creating again. A merge is only
ever sent with the validated head sha pinned (`Client.merge`).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pygit2

from errauto_daemon import config as config_mod
from errauto_daemon import git
from errauto_daemon.config import GithubConfig
from errauto_daemon.domain import PRState, State
from errauto_daemon.errors import FatalError
from errauto_daemon.github.client import (
    AlreadyExists,
    AuthError,
    Client,
    GitHubAPI,
    GitHubError,
    PullRequest,
    RateLimited,
    connect,
)
from errauto_daemon.repo import common_dir, open_repo
from errauto_daemon.store import Store, Submission

log = logging.getLogger("errauto.github")


# Looking again after a 422 "already exists": GitHub's list of pull requests
# is eventually consistent and may not show the one it just refused to duplicate.
LOOKUP_DELAYS = (0.0, 0.5, 1.0, 2.0)
CREATE_ATTEMPTS = 3


def branch_name(sub_id: int) -> str:
    return f"errauto/{sub_id}"


# --------------------------------------------------------------------------
# opening a pull request, exactly once


def open_pull_request(api: GitHubAPI, *, branch: str, base: str, title: str, body: str,
                      sleep: Callable[[float], None] = time.sleep) -> tuple[PullRequest, bool]:
    """The open pull request for `branch`, created if there is none; (pr, reused).

    GitHub keeps one open pull request per head and base, so a create
    refused with 422 "already exists" means there is one to find. After a
    create whose outcome is unknown (5xx, timeout), look before trying again.
    """
    found = api.find_open(branch, base)
    if found is not None:
        return found, True
    failure: GitHubError | None = None
    for _ in range(CREATE_ATTEMPTS):
        try:
            return api.create(branch, base, title, body), False
        except AlreadyExists as exc:
            return _the_existing_one(api, branch, base, exc, sleep), True
        except GitHubError as exc:
            if not exc.outcome_unknown:
                raise
            failure = exc
            found = api.find_open(branch, base)
            if found is not None:
                log.info("the create for %s answered %s but had happened: reusing #%d",
                         branch, exc.status, found.number)
                return found, True
    assert failure is not None
    raise failure


def _the_existing_one(api: GitHubAPI, branch: str, base: str, refused: AlreadyExists,
                      sleep: Callable[[float], None]) -> PullRequest:
    for delay in LOOKUP_DELAYS:
        sleep(delay)
        found = api.find_open(branch, base)
        if found is not None:
            return found
    raise GitHubError(f"GitHub says a pull request for {branch} exists, but it cannot be "
                      f"found: {refused.reason}", status=422) from None


# --------------------------------------------------------------------------
# the branch


def push_branch(repo: pygit2.Repository, remote: str, commit: str, branch: str) -> None:
    """Make `branch` on `remote` point at `commit`.

    Forced: `errauto/*` branches belong to errauto, and after a revalidation
    the branch carries a commit on a newer base.
    """
    proc = git.run(("push", "--porcelain", "--force", remote, f"{commit}:refs/heads/{branch}"),
                   common_dir(repo), check=False)
    if proc.returncode != 0:
        raise GitHubError(f"pushing {branch} to {remote} failed: {git.last_line(proc)}")


def remote_target(repo: pygit2.Repository, remote: str, target: str, base: str) -> str:
    """The target's tip on `remote`; GitHubError unless it contains `base`.

    A pull request carries every commit between the remote's target and its
    head: if the validated base is not on the remote, it would carry local
    commits nobody submitted.
    """
    cwd = common_dir(repo)
    proc = git.run(("ls-remote", "--exit-code", remote, f"refs/heads/{target}"), cwd, check=False)
    if proc.returncode == 2:
        raise GitHubError(f"{remote} has no branch {target}")
    if proc.returncode != 0:
        raise GitHubError(f"cannot read {remote}: {git.last_line(proc)}")
    tip = proc.stdout.decode().split()[0]
    if tip == base:
        return tip
    if pygit2.Oid(hex=tip) not in repo:
        fetch(repo, remote, target)
    if pygit2.Oid(hex=tip) not in repo or not repo.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=base)):
        raise GitHubError(f"{target} has commits that {remote}/{target} does not: a pull request "
                          f"would carry them too; push or reset {target} first")
    return tip


def fetch(repo: pygit2.Repository, remote: str, target: str) -> str:
    """The target's tip on `remote`, fetched now; GitHubError when that fails."""
    try:
        return git.fetch(common_dir(repo), remote, f"refs/heads/{target}")
    except git.FetchFailed as exc:
        raise GitHubError(f"fetching {target} from {remote} failed: {exc.detail}") from None


# --------------------------------------------------------------------------
# following open pull requests


def follow_open_pull_requests(store: Store, *, limit: int = 20, min_interval: float = 60.0,
                              connect: Callable[[GithubConfig], GitHubAPI] = connect,
                              on_decided: Callable[[Submission], None] | None = None) -> int:
    """Record pull requests that were merged or closed; returns how many.

    Bounded: at most `limit` pull requests per call, each at most once per
    `min_interval` seconds (the least recently checked first; checking one
    bumps the submission's `updated_at`). A merged one becomes `merged` with
    GitHub's merge commit; one closed without merging becomes `rejected`.
    A rate limit or a rejected token ends the round early. `on_decided` is
    called with each submission so decided (the daemon settles its inbox files).
    """
    clients: dict[GithubConfig, GitHubAPI] = {}
    decided = 0
    try:
        for sub, number in _due(store, limit, min_interval):
            try:
                pr = _look_up(sub, number, clients, connect)
            except (AuthError, RateLimited) as exc:
                log.warning("following pull requests stopped: %s", exc.reason)
                break
            except (GitHubError, FatalError) as exc:
                log.warning("submission %d: cannot follow pull request #%s: %s", sub.id, number, exc)
                pr = None
            if pr is None:
                # Checked all the same: the others come first in the next round.
                store.set_fields(sub.id, pr_state=sub.pr_state)
                continue
            done = _record(store, sub, pr)
            if done is not None:
                decided += 1
                if on_decided is not None:
                    on_decided(done)
    finally:
        for api in clients.values():
            if isinstance(api, Client):
                api.close()
    return decided


def _due(store: Store, limit: int, min_interval: float) -> Iterator[tuple[Submission, int]]:
    """Open pull requests not checked for `min_interval` seconds, least recently checked first."""
    for sub_id in store.pr_open_due(time.time() - min_interval, limit):
        sub = store.get(sub_id)
        if sub.state == State.PR_OPEN and sub.pr_number is not None:
            yield sub, sub.pr_number


def _look_up(sub: Submission, number: int, clients: dict[GithubConfig, GitHubAPI],
             connect: Callable[[GithubConfig], GitHubAPI]) -> PullRequest | None:
    """The pull request as GitHub has it now; None when its repository has no `[github]` any more."""
    conf = config_mod.load(open_repo(sub.repo), sub.target).github
    if conf is None:
        return None
    api = clients.get(conf)
    if api is None:
        api = clients[conf] = connect(conf)
    return api.get(number)


def _record(store: Store, sub: Submission, pr: PullRequest) -> Submission | None:
    """Record what became of `pr`; the submission if that decided it."""
    try:
        if pr.merged:
            return store.transition(
                sub.id, State.MERGED, expect=(State.PR_OPEN,), merged_commit=pr.merge_commit, pr_state=PRState.MERGED,
                reason=f"pull request #{pr.number} was merged on GitHub",
                detail=f"pull request #{pr.number} merged")
        if pr.state == "closed":
            return store.transition(
                sub.id, State.REJECTED, expect=(State.PR_OPEN,), pr_state=PRState.CLOSED,
                reason=f"pull request #{pr.number} was closed without merging",
                detail=f"pull request #{pr.number} closed")
        store.set_fields(sub.id, pr_state=_open_state(sub, pr))
    except FatalError:
        pass  # someone else decided it meanwhile
    return None


def _open_state(sub: Submission, pr: PullRequest) -> PRState:
    if pr.auto_merge:
        return PRState.AUTO_MERGE
    return sub.pr_state if sub.pr_state in (PRState.OPEN, PRState.AUTO_MERGE_FAILED) else PRState.OPEN
