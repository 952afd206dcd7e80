"""The GitHub route: push `errauto/<id>`, open the pull request, label it,
enable auto-merge, merge it at once (`merge_via_pr`), and follow it.

The one owner of everything errauto does on GitHub, and of pushes of
`errauto/*` branches (pushes of the target itself belong to merge.py):

- `client`: PyGithub for one repository, the transport's retries, rate
  limits waited out, every failure a `GitHubError` with the token removed;
- `pulls`: pushing the branch, opening its pull request exactly once,
  following open pull requests until they are merged or closed;
- `body`: the pull request's title and description.

Every failure is a `GitHubError`; the caller holds the submission for review
with its reason and raises an alert.
"""
from __future__ import annotations

from errauto_daemon.github.body import (
    AT_ONCE,
    BY_AUTO_MERGE,
    BY_PERSON,
    FileChange,
    files_changed,
    pull_request_body,
    pull_request_title,
)
from errauto_daemon.github.client import (
    RATE_LIMIT_ROUNDS,
    TIMEOUT,
    AlreadyExists,
    AuthError,
    Client,
    GitHubAPI,
    GitHubError,
    HeadMoved,
    PullRequest,
    RateLimited,
    connect,
    rate_limit_wait,
    transport_retry,
)
from errauto_daemon.github.pulls import (
    CREATE_ATTEMPTS,
    LOOKUP_DELAYS,
    branch_name,
    fetch,
    follow_open_pull_requests,
    open_pull_request,
    push_branch,
    remote_target,
)

__all__ = [
    "AT_ONCE", "BY_AUTO_MERGE", "BY_PERSON",
    "CREATE_ATTEMPTS", "LOOKUP_DELAYS", "RATE_LIMIT_ROUNDS", "TIMEOUT",
    "AlreadyExists", "AuthError", "Client", "FileChange", "GitHubAPI", "GitHubError", "HeadMoved",
    "PullRequest", "RateLimited",
    "branch_name", "connect", "fetch", "files_changed", "follow_open_pull_requests",
    "open_pull_request", "pull_request_body", "pull_request_title", "push_branch",
    "rate_limit_wait", "remote_target", "transport_retry",
]
