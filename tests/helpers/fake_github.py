"""A small GitHub on 127.0.0.1: the REST and GraphQL calls errauto makes through PyGithub.

It keeps pull requests in memory and reads branches from a bare git
repository (the remote errauto pushes to), so a pull request's head is
whatever was really pushed, and a merge really moves the base branch there.
It answers like GitHub where errauto depends on the details: one open pull
request per head and base (422 "A pull request already exists"), 409 on a
merge whose pinned sha is not the head, the GraphQL error when auto-merge is
not allowed, 401 for a wrong token.

Every request is recorded. Faults are injected per method and path:
`fail(...)` answers with a given status (optionally after carrying the request
out, like a response lost on its way back); `on(...)` runs a hook first.
The server stops by itself after `lifetime` seconds, if a test forgets to.
"""
from __future__ import annotations

import json
import re
import subprocess
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.helpers.gitrepo import git
from tests.helpers.loopback import LoopbackFake, LoopbackServer

AUTO_MERGE_NOT_ALLOWED = "Pull request Auto merge is not allowed for this repository"
CLEAN_STATUS = "Pull request Pull request is in clean status"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the /api/v3 prefix and the query; GraphQL is "/graphql"
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: Any  # decoded JSON, or None


@dataclass
class Fault:
    method: str
    path: str  # a regular expression matched against the whole path
    status: int | None  # None: only run `hook`
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1  # None: every time
    carry_out: bool = False  # handle the request, then answer with the fault
    hook: Callable[[], None] | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.times is None or self.times > 0) and method == self.method \
            and re.fullmatch(self.path, path) is not None


class FakeGitHub(LoopbackFake):
    def __init__(self, remote: Path, *, token: str, repo: str = "octo/project",
                 lifetime: float = 60.0) -> None:
        self.remote = remote
        self.token = token
        self.repo = repo
        self.owner = repo.split("/")[0]
        self.allow_auto_merge = True
        self.auto_merge_error: str | None = None  # e.g. GitHub's "Pull request is in clean status"
        self.requests: list[Request] = []
        self.pulls: dict[int, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self._lock = threading.RLock()
        self._loop = LoopbackServer(self._handler(), name="fake-github", lifetime=lifetime)
        self.port = self._loop.port
        self.web = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.web}/api/v3"  # an Enterprise-style API URL: GraphQL at /api/graphql

    # -- what tests use ----------------------------------------------------------------

    def fail(self, method: str, path: str, status: int, body: Any = None, *,
             headers: dict[str, str] | None = None, times: int | None = 1, carry_out: bool = False) -> None:
        with self._lock:
            self.faults.append(Fault(method, path, status, body, headers or {}, times, carry_out))

    def on(self, method: str, path: str, hook: Callable[[], None], *, times: int | None = 1) -> None:
        with self._lock:
            self.faults.append(Fault(method, path, None, times=times, hook=hook))

    def calls(self, method: str, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method and re.fullmatch(path, r.path)]

    def add_pull(self, head: str, base: str = "main", title: str = "opened earlier") -> dict[str, Any]:
        with self._lock:
            return self._create(head, base, title, "")

    def merge_pull(self, number: int, method: str = "merge") -> str:
        """As if someone (or auto-merge) merged it on GitHub."""
        with self._lock:
            pr = self.pulls[number]
            status, body = self._merge(pr, None, method)
            assert status == 200, body
            return str(body["sha"])

    def close_pull(self, number: int) -> None:
        with self._lock:
            self._freeze(self.pulls[number])
            self.pulls[number]["state"] = "closed"

    # -- the repository --------------------------------------------------------------

    def branch_sha(self, branch: str) -> str | None:
        out = git(self.remote, "rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}", check=False)
        return out.strip() or None

    def _freeze(self, pr: dict[str, Any]) -> None:
        pr["head_sha"] = self.branch_sha(pr["head"]) or pr["head_sha"]
        pr["base_sha"] = self.branch_sha(pr["base"]) or pr["base_sha"]

    def _create(self, head: str, base: str, title: str, body: str) -> dict[str, Any]:
        number = len(self.pulls) + 1
        pr = {"number": number, "head": head, "base": base, "title": title, "body": body,
              "state": "open", "merged": False, "merge_commit_sha": None, "labels": [],
              "auto_merge": None, "head_sha": self.branch_sha(head), "base_sha": self.branch_sha(base)}
        self.pulls[number] = pr
        return pr

    def _merge(self, pr: dict[str, Any], sha: str | None, method: str) -> tuple[int, dict[str, Any]]:
        if pr["state"] != "open":
            return 405, {"message": "Pull Request is not mergeable"}
        head = self.branch_sha(pr["head"])
        if sha is not None and sha != head:
            return 409, {"message": "Head branch was modified. Review and try the merge again."}
        base = self.branch_sha(pr["base"])
        if subprocess.run(("git", "merge-base", "--is-ancestor", str(base), str(head)),
                          cwd=self.remote, capture_output=True).returncode != 0:
            return 405, {"message": "Pull Request is not mergeable"}
        tree = git(self.remote, "rev-parse", f"{head}^{{tree}}").strip()
        parents = ["-p", str(base)] + (["-p", str(head)] if method == "merge" else [])
        commit = git(self.remote, "commit-tree", tree, *parents, "-m",
                     f"Merge pull request #{pr['number']} from {self.owner}/{pr['head']}").strip()
        git(self.remote, "update-ref", f"refs/heads/{pr['base']}", commit, str(base))
        self._freeze(pr)
        pr.update(state="closed", merged=True, merge_commit_sha=commit, auto_merge=None)
        return 200, {"sha": commit, "merged": True, "message": "Pull Request successfully merged"}

    # -- JSON shapes -----------------------------------------------------------------

    def _pr_json(self, pr: dict[str, Any]) -> dict[str, Any]:
        n = pr["number"]
        live = pr["state"] == "open"
        head_sha = (self.branch_sha(pr["head"]) if live else None) or pr["head_sha"]
        base_sha = (self.branch_sha(pr["base"]) if live else None) or pr["base_sha"]
        api = f"{self.url}/repos/{self.repo}"
        return {
            "url": f"{api}/pulls/{n}", "id": 1000 + n, "node_id": f"PR_kwDO{n:04d}", "number": n,
            "html_url": f"{self.web}/{self.repo}/pull/{n}", "issue_url": f"{api}/issues/{n}",
            "state": pr["state"], "title": pr["title"], "body": pr["body"], "draft": False,
            "merged": pr["merged"], "merged_at": "2026-01-02T03:04:05Z" if pr["merged"] else None,
            "merge_commit_sha": pr["merge_commit_sha"], "mergeable": True,
            "labels": [{"name": l} for l in pr["labels"]], "auto_merge": pr["auto_merge"],
            "user": {"login": "errauto-bot"},
            "head": {"ref": pr["head"], "sha": head_sha, "label": f"{self.owner}:{pr['head']}"},
            "base": {"ref": pr["base"], "sha": base_sha, "label": f"{self.owner}:{pr['base']}"},
        }

    # -- answering -------------------------------------------------------------------

    def _answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        repo = f"/repos/{self.repo}"
        if method == "GET" and path == repo:
            return 200, {"full_name": self.repo, "name": self.repo.split("/")[1],
                         "owner": {"login": self.owner}, "url": f"{self.url}{repo}",
                         "allow_auto_merge": self.allow_auto_merge}
        if path == f"{repo}/pulls":
            if method == "GET":
                out = [self._pr_json(p) for p in self.pulls.values()
                       if query.get("state", "open") in (p["state"], "all")
                       and ("head" not in query or query["head"] == f"{self.owner}:{p['head']}")
                       and ("base" not in query or query["base"] == p["base"])]
                return 200, out
            if method == "POST":
                if self.branch_sha(body["head"]) is None:
                    return 422, {"message": "Validation Failed", "errors": [
                        {"resource": "PullRequest", "field": "head", "code": "invalid"}]}
                for p in self.pulls.values():
                    if p["state"] == "open" and p["head"] == body["head"] and p["base"] == body["base"]:
                        return 422, {"message": "Validation Failed", "errors": [
                            {"resource": "PullRequest", "code": "custom",
                             "message": f"A pull request already exists for {self.owner}:{body['head']}."}]}
                return 201, self._pr_json(self._create(body["head"], body["base"], body.get("title", ""),
                                                       body.get("body", "")))
        m = re.fullmatch(rf"{repo}/(pulls|issues)/(\d+)(/merge|/labels)?", path)
        if m and int(m.group(2)) in self.pulls:
            pr = self.pulls[int(m.group(2))]
            kind, tail = m.group(1), m.group(3)
            if kind == "pulls" and tail is None and method == "GET":
                return 200, self._pr_json(pr)
            if kind == "pulls" and tail is None and method == "PATCH":
                pr.update({k: body[k] for k in ("title", "body", "state") if k in body})
                return 200, self._pr_json(pr)
            if kind == "pulls" and tail == "/merge" and method == "PUT":
                return self._merge(pr, body.get("sha"), body.get("merge_method", "merge"))
            if kind == "issues" and tail == "/labels" and method == "POST":
                names = body if isinstance(body, list) else body.get("labels", [])
                pr["labels"] += [n for n in names if n not in pr["labels"]]
                return 200, [{"name": n} for n in pr["labels"]]
        if method == "POST" and path == "/graphql":
            return self._graphql(body)
        return 404, {"message": "Not Found"}

    def _graphql(self, body: dict[str, Any]) -> tuple[int, Any]:
        query = body.get("query", "")
        if "enablePullRequestAutoMerge" not in query:
            return 200, {"errors": [{"message": "the fake knows only enablePullRequestAutoMerge"}]}
        given = body["variables"]["input"]
        pr = next((p for p in self.pulls.values() if f"PR_kwDO{p['number']:04d}" == given["pullRequestId"]), None)
        if pr is None:
            return 200, {"data": None, "errors": [{"type": "NOT_FOUND", "message": "Could not resolve to a node"}]}
        problem = self.auto_merge_error
        if not self.allow_auto_merge:
            problem = AUTO_MERGE_NOT_ALLOWED
        elif "expectedHeadOid" in given and given["expectedHeadOid"] != self.branch_sha(pr["head"]):
            problem = "The expected head OID did not match the pull request's head"
        if problem:
            return 200, {"data": {"enablePullRequestAutoMerge": None}, "errors": [
                {"type": "UNPROCESSABLE", "path": ["enablePullRequestAutoMerge"], "message": problem}]}
        pr["auto_merge"] = {"merge_method": given.get("mergeMethod", "MERGE").lower(),
                            "enabled_by": {"login": "errauto-bot"}}
        return 200, {"data": {"enablePullRequestAutoMerge": {
            "actor": {"avatarUrl": "", "login": "errauto-bot", "resourcePath": "/errauto-bot", "url": ""},
            "clientMutationId": None}}}

    def _handle(self, method: str, raw_path: str, headers: dict[str, str], data: bytes) -> tuple[int, dict[str, str], bytes]:
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path
        if path == "/api/graphql":
            path = "/graphql"
        path = path.removeprefix("/api/v3")
        query = dict(urllib.parse.parse_qsl(parsed.query))
        try:
            body = json.loads(data) if data else None
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(Request(method, path, query, headers, body))
            fault = next((f for f in self.faults if f.matches(method, path)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
            if fault is not None and fault.hook is not None:
                fault.hook()
            if headers.get("authorization") != f"token {self.token}":
                status, out = 401, {"message": "Bad credentials",
                                    "documentation_url": "https://docs.github.com/rest"}
                extra: dict[str, str] = {}
            elif fault is not None and fault.status is not None and not fault.carry_out:
                status, out, extra = fault.status, fault.body, fault.headers
            else:
                status, out = self._answer(method, path, query, body)
                extra = {}
                if fault is not None and fault.status is not None:
                    status, out, extra = fault.status, fault.body, fault.headers
        return status, {"Content-Type": "application/json; charset=utf-8", **extra}, \
            json.dumps(out).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, out_headers, payload = fake._handle(self.command, self.path, headers, data)
                self.send_response(status)
                for name, value in out_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
