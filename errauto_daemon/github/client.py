"""Talking to GitHub: the PyGithub client for one repository, its transport,
its retry and rate-limit policy, and the errors the route sees.

- PyGithub's default retry sends POST again after a 5xx, which can open a
  second pull request when the first request did succeed. Here only GET,
  HEAD and OPTIONS are retried by the transport; a call the caller marks
  `resend` (an edit, labels, auto-merge) may be sent again after a 5xx, a
  create or a merge never is (pulls.py looks before trying again);
- a rate-limited request (403 with `x-ratelimit-remaining: 0`, a secondary
  limit, or 429) was not carried out, so it is sent again after the wait
  GitHub asks for (`Retry-After`, else `x-ratelimit-reset`), at most
  `github.rate_limit_wait` seconds per request; a longer wait is a failure.

Every failure is a `GitHubError` whose text has the token removed. The
token is read from the environment variable `github.token_env` here and
nowhere else, and lives only inside PyGithub's `Auth.Token`.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar

import requests
from github import Auth, Github, GithubException
from github.PullRequest import PullRequest as RawPullRequest
from github.Requester import Requester
from urllib3.util.retry import Retry

from errauto_daemon import __version__, http, redact
from errauto_daemon.config import GithubConfig
from errauto_daemon.errors import printable

log = logging.getLogger("errauto.github")

T = TypeVar("T")

RATE_LIMIT_ROUNDS = 5  # a Retry-After of 0 must not loop for ever
TIMEOUT = 30


# --------------------------------------------------------------------------
# errors


class GitHubError(Exception):
    """The GitHub route failed; `reason` is one line, safe to show and store."""

    def __init__(self, reason: str, *, status: int | None = None, outcome_unknown: bool = False) -> None:
        reason = printable(redact.redact(reason))
        super().__init__(reason)
        self.reason = reason
        self.status = status
        # The request may have been carried out (a 5xx or a timeout on a write).
        self.outcome_unknown = outcome_unknown


class AuthError(GitHubError):
    """No token, or GitHub rejected it (401)."""


class RateLimited(GitHubError):
    """GitHub asked for a longer wait than errauto is configured to wait."""


class HeadMoved(GitHubError):
    """409 on merge: the pull request's head is not the validated commit."""


class AlreadyExists(GitHubError):
    """422 on create: an open pull request for this branch already exists."""


# --------------------------------------------------------------------------
# the interface


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str  # the page people open
    state: Literal["open", "closed"]  # GitHub's words
    merged: bool
    merge_commit: str | None
    head: str  # branch name
    head_sha: str
    node_id: str
    auto_merge: bool


class GitHubAPI(Protocol):
    """What the route needs from GitHub; `Client` is the real one."""

    def check_access(self) -> None: ...
    def find_open(self, branch: str, base: str) -> PullRequest | None: ...
    def create(self, branch: str, base: str, title: str, body: str) -> PullRequest: ...
    def update(self, pr: PullRequest, title: str, body: str) -> None: ...
    def get(self, number: int) -> PullRequest: ...
    def add_labels(self, pr: PullRequest, labels: Sequence[str]) -> None: ...
    def enable_auto_merge(self, pr: PullRequest, method: str, head_sha: str) -> None: ...
    def merge(self, pr: PullRequest, head_sha: str, method: str) -> str: ...


# --------------------------------------------------------------------------
# the real client


def connect(conf: GithubConfig, env: Mapping[str, str] | None = None) -> Client:
    """A client for `conf.repo`; AuthError when the token variable is empty."""
    redact.register([conf.token_env])
    # PyGithub logs each request and response verbatim at DEBUG (it masks the
    # Authorization header, but a response body may quote anything).
    redact.redact_loggers(("github", "github.Requester", "github.GithubRetry"))
    token = (os.environ if env is None else env).get(conf.token_env, "").strip()
    if not token:
        raise AuthError(f"no GitHub token: the environment variable {conf.token_env} "
                        "(github.token_env) is not set")
    return Client(conf, token)


def transport_retry() -> Retry:
    """Retries the transport may do on its own: idempotent requests only.

    PyGithub's default (GithubRetry) also re-sends POST on 5xx: a create
    that succeeded but answered 500 would be sent twice. Rate limits are
    not handled here either: `Client._call` waits them out, for every method.
    """
    return Retry(total=3, connect=2, read=2, status=2, backoff_factor=0.5, backoff_max=4.0,
                 allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}),
                 status_forcelist=(500, 502, 503, 504), respect_retry_after_header=False,
                 raise_on_status=False)


class Client:
    """GitHub through PyGithub, for one repository."""

    def __init__(self, conf: GithubConfig, token: str, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.conf = conf
        self._token = token
        self._sleep = sleep
        self._gh = Github(
            auth=Auth.Token(token), base_url=conf.api_url, timeout=TIMEOUT, retry=transport_retry(),
            user_agent=f"errauto/{__version__}",
            seconds_between_requests=min(0.25, conf.write_interval),
            seconds_between_writes=conf.write_interval, lazy=True)
        self._repo = self._gh.get_repo(conf.repo)  # lazy: no request until one is needed
        self._pulls: dict[int, RawPullRequest] = {}

    def __repr__(self) -> str:
        return f"Client({self.conf.repo} at {self.conf.api_url})"

    def close(self) -> None:
        self._gh.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the calls ---------------------------------------------------------------

    def check_access(self) -> None:
        try:
            self._call("reading the repository", self._repo.update)
        except GitHubError as exc:
            if exc.status == 404:
                raise GitHubError(f"GitHub repository {self.conf.repo} not found at {self.conf.api_url}, "
                                  f"or the token in {self.conf.token_env} cannot see it",
                                  status=404) from None
            raise

    def find_open(self, branch: str, base: str) -> PullRequest | None:
        def look() -> PullRequest | None:
            for raw in self._repo.get_pulls(state="open", head=f"{self.conf.owner}:{branch}", base=base):
                if raw.head.ref == branch:
                    return self._keep(raw)
            return None
        return self._call(f"looking for the pull request of {branch}", look)

    def create(self, branch: str, base: str, title: str, body: str) -> PullRequest:
        try:
            return self._call(f"opening a pull request for {branch}", lambda: self._keep(
                self._repo.create_pull(base=base, head=branch, title=title, body=body)))
        except GitHubError as exc:
            if exc.status == 422 and "already exists" in exc.reason:
                raise AlreadyExists(exc.reason, status=422) from None
            raise

    def update(self, pr: PullRequest, title: str, body: str) -> None:
        raw = self._raw(pr.number)
        self._call(f"updating pull request #{pr.number}", lambda: raw.edit(title=title, body=body),
                   resend=True)

    def get(self, number: int) -> PullRequest:
        return self._call(f"reading pull request #{number}", lambda: self._keep(self._repo.get_pull(number)))

    def add_labels(self, pr: PullRequest, labels: Sequence[str]) -> None:
        if labels:
            raw = self._raw(pr.number)
            self._call(f"labelling pull request #{pr.number}", lambda: raw.add_to_labels(*labels),
                       resend=True)

    def enable_auto_merge(self, pr: PullRequest, method: str, head_sha: str) -> None:
        raw = self._raw(pr.number)
        # expected_head_oid: GitHub refuses if the head is not the validated
        # commit, so auto-merge can never merge something else.
        try:
            self._call(f"enabling auto-merge on pull request #{pr.number}", lambda: raw.enable_automerge(
                merge_method=method.upper(), expected_head_oid=head_sha), resend=True)
        except GitHubError as exc:
            if "clean status" in exc.reason or "unstable status" in exc.reason:
                # GitHub only queues auto-merge when something is still pending.
                raise GitHubError(exc.reason + " (auto-merge needs required status checks on the "
                                  "base branch; see docs/github.md)", status=exc.status) from None
            raise

    def merge(self, pr: PullRequest, head_sha: str, method: str) -> str:
        """Merge with the head pinned; returns the merge commit. HeadMoved on 409."""
        raw = self._raw(pr.number)
        what = f"merging pull request #{pr.number}"
        for attempt in range(2):
            try:
                status = self._call(what, lambda: raw.merge(sha=head_sha, merge_method=method))
                if not status.merged:
                    raise GitHubError(f"{what}: GitHub did not merge it ({status.message})")
                return str(status.sha)
            except GitHubError as exc:
                if exc.status == 409:
                    raise HeadMoved(exc.reason, status=409) from None
                if not exc.outcome_unknown or attempt:
                    raise
            # It may have merged: look before asking again (the head stays pinned).
            now = self.get(pr.number)
            if now.merged and now.merge_commit:
                return now.merge_commit
        raise AssertionError("unreachable")

    # -- plumbing ----------------------------------------------------------------

    def _keep(self, raw: RawPullRequest) -> PullRequest:
        self._pulls[raw.number] = raw
        return PullRequest(
            number=raw.number, url=raw.html_url, state="closed" if raw.state == "closed" else "open", merged=raw.merged_at is not None,
            merge_commit=raw.merge_commit_sha if raw.merged_at is not None else None,
            head=raw.head.ref, head_sha=raw.head.sha, node_id=raw.node_id,
            auto_merge=raw.auto_merge is not None)

    def _raw(self, number: int) -> RawPullRequest:
        if number not in self._pulls:
            self.get(number)
        return self._pulls[number]

    def _call(self, what: str, fn: Callable[[], T], *, resend: bool = False) -> T:
        """Run one API call; wait out rate limits (bounded); failures become GitHubError.

        `resend`: the call is idempotent in effect (labels, auto-merge, an
        edit), so after a 5xx it may be sent again; a create or merge never is.
        """
        waited = 0.0
        failures = rounds = 0
        while True:
            try:
                return fn()
            except GithubException as exc:
                error, wait = self._error(what, exc)
            except requests.RequestException as exc:
                # The request may or may not have reached GitHub.
                error, wait = GitHubError(f"{what}: cannot reach {self.conf.api_url} ({type(exc).__name__})",
                                          outcome_unknown=True), None
            if wait is not None:
                if waited + wait > self.conf.rate_limit_wait:
                    raise RateLimited(
                        f"{what}: GitHub's rate limit asks to wait {wait:.0f}s, longer than "
                        f"github.rate_limit_wait ({self.conf.rate_limit_wait:g}s)", status=error.status)
                if rounds >= RATE_LIMIT_ROUNDS:
                    raise RateLimited(f"{what}: still rate limited after {rounds} waits", status=error.status)
                log.info("%s: rate limited (%s); waiting %.1fs", what, error.status, wait)
                self._sleep(wait)
                waited += wait
                rounds += 1
                continue
            if resend and error.outcome_unknown and failures < 2:
                failures += 1
                self._sleep(0.5 * failures)
                continue
            log.info("%s", error.reason)
            raise error

    def _error(self, what: str, exc: GithubException) -> tuple[GitHubError, float | None]:
        status = exc.status
        message = self._scrub(_message(exc.data) or (exc.message or ""))
        headers = {k.lower(): str(v) for k, v in (exc.headers or {}).items()}
        if status == 401:
            return AuthError(f"GitHub rejected the token in {self.conf.token_env} "
                             f"(401 {message or 'Bad credentials'})", status=401), None
        wait = rate_limit_wait(status, headers, message)
        text = f"{what}: GitHub answered {status}" + (f" {message}" if message else "")
        return GitHubError(text, status=status, outcome_unknown=status >= 500), wait

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***")


def _message(data: Any) -> str:
    """GitHub's message and its detailed errors (REST 422s, GraphQL errors)."""
    if not isinstance(data, dict):
        return str(data)[:300] if data else ""
    parts = [str(data["message"])] if data.get("message") else []
    for error in data.get("errors") or []:
        if isinstance(error, dict) and error.get("message"):
            parts.append(str(error["message"]))
        elif isinstance(error, dict) and error.get("code"):
            parts.append(f"{error.get('field', '')} {error['code']}".strip())
    return "; ".join(parts)[:500]


def rate_limit_wait(status: int, headers: Mapping[str, str], message: str, *,
                    now: float | None = None) -> float | None:
    """Seconds GitHub asks to wait before this request may be sent again; None
    when the answer is not a rate limit (a 403 can be a plain refusal)."""
    if status not in (403, 429):
        return None
    asked = headers.get("retry-after", "").strip()
    exhausted = headers.get("x-ratelimit-remaining") == "0"
    if status == 403 and not (asked or exhausted or Requester.isRateLimitError(message)):
        return None
    now = time.time() if now is None else now
    wait = http.retry_after(asked, now=now)
    if wait is not None:
        return wait
    reset = headers.get("x-ratelimit-reset", "")
    if exhausted and reset.isdigit():
        # +1: the reset is given in whole seconds.
        return max(0.0, int(reset) - now) + 1.0
    return 60.0  # GitHub's advice for a secondary limit without a Retry-After
