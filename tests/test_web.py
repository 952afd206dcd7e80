"""`errauto web` through HTTP: the token, CSRF, the security headers, the queue, a submission, decisions.

Submissions are made by real validations (`errauto apply` on a real
project); the pages are asked through Flask's test client, and once through
a real server on 127.0.0.1 with `requests`.
"""
from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient

from errauto_daemon.store import Store
from errauto_daemon.web.app import WebConfig, create_app
from errauto_daemon.web.security import COOKIE, csrf_for, host_name
from tests.helpers import web as web_server
from tests.helpers.gitrepo import CALC, PYTHON, GitRepo, config_toml, python_project

TOKEN = "test-token-0123456789"
TESTS_FAIL = CALC.replace("a * b", "a * b + 1")  # held for review: the tests gate fails
LINT_FAILS = CALC.replace("a - b", "a + b  " + "#" * 80)  # held for review: lint fails, tests pass
XSS = "<script>alert(1)</script>"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "errauto_daemon", *args], capture_output=True, text=True,
                          env=os.environ.copy())


def apply(repo: GitRepo, tmp_path: Path, name: str, patch: bytes) -> dict:
    path = tmp_path / f"{name}.patch"
    path.write_bytes(patch)
    done = cli("apply", str(path), "--repo", str(repo.path), "--json")
    assert done.returncode in (0, 1, 2), done.stderr
    return json.loads(done.stdout)


def client_for(page_size: int = 50) -> FlaskClient:
    app = create_app(WebConfig(token=TOKEN, db_path=Store().path, page_size=page_size, who="reviewer"))
    client = app.test_client()
    assert client.get(f"/?token={TOKEN}").status_code == 303
    return client


def csrf() -> str:
    return csrf_for(TOKEN)


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    return python_project(tmp_path / "proj")


@pytest.fixture
def empty_store() -> Store:
    return Store()


# -- who may ask ------------------------------------------------------------------------


def test_a_request_without_the_token_is_refused(empty_store: Store) -> None:
    client = create_app(WebConfig(token=TOKEN, db_path=empty_store.path)).test_client()
    for path in ("/", "/submissions/1", "/changes", "/static/style.css"):
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert b"Queue" not in answer.data
    assert client.get("/?token=wrong-token").status_code == 403
    client.set_cookie(COOKIE, "wrong-token")
    assert client.get("/").status_code == 403


def test_the_token_becomes_a_strict_cookie_and_leaves_the_url(empty_store: Store) -> None:
    client = create_app(WebConfig(token=TOKEN, db_path=empty_store.path)).test_client()
    answer = client.get(f"/?state=merged&token={TOKEN}")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/?state=merged"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    shown = client.get("/?state=merged")
    assert shown.status_code == 200 and b"No submissions match these filters" in shown.data


def test_on_loopback_a_request_for_another_host_name_is_refused(empty_store: Store) -> None:
    client = client_for()
    # A site whose name was pointed at 127.0.0.1 (DNS rebinding) names itself in Host.
    assert client.get("/", headers={"Host": "evil.example:8470"}).status_code == 403
    assert client.get(f"/?token={TOKEN}", headers={"Host": "evil.example"}).status_code == 403
    for host in ("127.0.0.1:8470", "localhost", "[::1]:8470"):
        assert client.get(f"/?token={TOKEN}", headers={"Host": host}).status_code == 303, host
    proxied = create_app(WebConfig(token=TOKEN, db_path=empty_store.path, hosts=None)).test_client()
    assert proxied.get(f"/?token={TOKEN}", headers={"Host": "errauto.example.org"}).status_code == 303


def test_host_names_without_their_port() -> None:
    assert [host_name(h) for h in ("127.0.0.1:8470", "localhost", "[::1]:80", "[::1]", "::1", "a.example:1")] == \
        ["127.0.0.1", "localhost", "::1", "::1", "::1", "a.example"]


def test_every_answer_carries_the_security_headers(empty_store: Store) -> None:
    client = client_for()
    for answer in (client.get("/"), client.get("/static/style.css"), client.get("/nowhere"),
                   create_app(WebConfig(token=TOKEN, db_path=empty_store.path)).test_client().get("/")):
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_the_assets_come_from_the_package(empty_store: Store) -> None:
    client = client_for()
    page = client.get("/").get_data(as_text=True)
    assert 'href="/static/style.css"' in page and 'src="/static/poll.js"' in page
    assert "http://" not in page and "https://" not in page  # no CDN
    assert client.get("/static/poll.js").status_code == 200
    assert json.loads(client.get("/changes").data) == {"change": 0}


# -- the queue ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_queue_shows_real_decisions_filtered_and_paged(project: GitRepo, tmp_path: Path) -> None:
    fixed = apply(project, tmp_path, "fix", project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))
    held = apply(project, tmp_path, "held", project.make_patch({"calc.py": TESTS_FAIL}))
    lint = apply(project, tmp_path, "lint", project.make_patch({"calc.py": LINT_FAILS.replace("a - b", "a + b")}))
    assert fixed["state"] == "merged" and held["state"] == "awaiting_review"
    client = client_for(page_size=2)

    first = client.get("/").get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'<td><a href="/submissions/(\d+)">', first)]
    assert ids == [lint["id"], held["id"]]  # newest first, two a page
    older = re.search(r'<a rel="next" href="([^"]+)">older</a>', first)
    assert older is not None
    second = client.get(html.unescape(older[1])).get_data(as_text=True)
    assert [int(i) for i in re.findall(r'<td><a href="/submissions/(\d+)">', second)] == [fixed["id"]]
    assert 'rel="next"' not in second and ">newest</a>" in second

    merged = client.get("/?state=merged").get_data(as_text=True)
    assert re.findall(r'<td><a href="/submissions/(\d+)">', merged) == [str(fixed["id"])]
    assert 'value="merged" checked' in merged
    repo = os.path.realpath(project.path)
    by_repo = client.get("/", query_string={"repo": repo, "state": "awaiting_review"}).get_data(as_text=True)
    assert sorted(int(i) for i in re.findall(r'<td><a href="/submissions/(\d+)">', by_repo)) == \
        sorted([held["id"], lint["id"]])
    assert re.findall(r'<td><a href="/submissions/(\d+)">', client.get("/?source=inbox").get_data(as_text=True)) == []
    assert "No submissions match" in client.get("/?q=nothing-like-it").get_data(as_text=True)


# -- a submission --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_held_submission_shows_its_diff_failing_check_and_history(project: GitRepo, tmp_path: Path) -> None:
    held = apply(project, tmp_path, "held", project.make_patch({"calc.py": TESTS_FAIL}))
    client = client_for()
    page = client.get(f"/submissions/{held['id']}").get_data(as_text=True)
    assert "awaiting_review" in page
    assert '<span class="filename">calc.py</span>' in page
    # The changed line, numbered as in the new file (mul's return is line 6); its tokens are coloured spans.
    plain = re.sub(r'<span class="[\w-]+">|</span>', "", page)
    assert re.search(r'<tr class="add"><td class="num"></td><td class="num">6</td><td class="code">\+'
                     r'    return a \* b \+ 1</td></tr>', plain), page
    assert re.search(r'<tr class="del"><td class="num">6</td><td class="num"></td>', page)
    assert "tests must pass to auto-merge" in page  # the gate, in the words `queue show` uses
    assert "AssertionError: 7 != 6" in page  # the failing test, from the log's tail
    assert "queued → validating" in page.replace("&#8594;", "→")  # the history
    log = client.get(f"/submissions/{held['id']}/checks/0/log")
    assert log.status_code == 200 and log.mimetype == "text/plain"
    assert client.get("/submissions/9999").status_code == 404
    assert client.get(f"/submissions/{held['id']}/checks/9/log").status_code == 404


def test_a_post_without_the_csrf_token_is_refused(empty_store: Store) -> None:
    client = client_for()
    assert client.post("/submissions/1/reject", data={"reason": "no"}).status_code == 403
    assert client.post("/submissions/1/reject", data={"reason": "no", "csrf": "x" * 64}).status_code == 403
    assert client.get("/submissions/1/reject").status_code == 405  # a decision is never a GET


@pytest.mark.slow
def test_approve_needs_force_for_a_gate_as_the_cli_does(project: GitRepo, tmp_path: Path) -> None:
    held = apply(project, tmp_path, "held", project.make_patch({"calc.py": TESTS_FAIL}))
    tip = project.head()
    client = client_for()
    page = client.get(f"/submissions/{held['id']}").get_data(as_text=True)
    assert 'name="force"' in page  # the page says a gate failed and offers to merge anyway

    refused = client.post(f"/submissions/{held['id']}/approve", data={"csrf": csrf()})
    assert refused.status_code == 409
    assert "--force" in refused.get_data(as_text=True)
    assert project.head() == tip and Store().get(held["id"]).state == "awaiting_review"

    done = client.post(f"/submissions/{held['id']}/approve", data={"csrf": csrf(), "force": "1"})
    assert done.status_code == 303 and done.headers["Location"] == f"/submissions/{held['id']}"
    sub = Store().get(held["id"])
    assert sub.state == "merged" and project.head() == sub.merged_commit
    assert "a * b + 1" in project.read("calc.py")
    details = [e["detail"] or "" for e in Store().events(held["id"])]
    assert any(d.startswith("approved by reviewer") and "with --force" in d for d in details)
    shown = client.get(f"/submissions/{held['id']}").get_data(as_text=True)
    assert f'<code class="merged-commit">{sub.merged_commit}</code>' in shown
    assert 'action="/submissions/' not in shown.split('class="actions"')[0] and "Approve</button>" not in shown


@pytest.mark.slow
def test_reject_needs_a_reason_and_is_recorded_as_the_cli_records_it(project: GitRepo, tmp_path: Path) -> None:
    held = apply(project, tmp_path, "lint", project.make_patch({"calc.py": LINT_FAILS}))
    client = client_for()
    blank = client.post(f"/submissions/{held['id']}/reject", data={"csrf": csrf(), "reason": "  "})
    assert blank.status_code == 400 and "a rejection needs a reason" in blank.get_data(as_text=True)
    done = client.post(f"/submissions/{held['id']}/reject", data={"csrf": csrf(), "reason": "wrong approach"})
    assert done.status_code == 303
    sub = Store().get(held["id"])
    assert sub.state == "rejected" and sub.reason == "rejected by reviewer: wrong approach"
    # Retrying a person's rejection needs force, as `queue retry` does.
    again = client.post(f"/submissions/{held['id']}/retry", data={"csrf": csrf()})
    assert again.status_code == 409 and "--force" in again.get_data(as_text=True)
    retried = client.post(f"/submissions/{held['id']}/retry", data={"csrf": csrf(), "force": "1"})
    assert retried.status_code == 303
    assert until(lambda: Store().get(held["id"]).state == "awaiting_review")  # validated again: lint fails
    assert "retried by reviewer with --force" in " ".join(e["detail"] or "" for e in Store().events(held["id"]))


def until(done: Callable[[], bool], seconds: float = 120.0) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


WAIT_FOR_GO = """\
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
"""


@pytest.mark.slow
def test_retry_is_answered_at_once_and_validates_beside_the_server(tmp_path: Path) -> None:
    """A check that waits for the test's word: the page is answered while the validation runs."""
    gate = tmp_path / "gate"
    gate.mkdir()
    go = gate / "go"
    go.touch()
    waits = f'[checks.wait]\ncommand = ["{PYTHON}", "tools/wait.py", "{go}"]\nweight = 0.1\n'
    project = python_project(tmp_path / "proj", config=config_toml(top=f'sandbox_readable = ["{gate}"]',
                                                                   extra=waits))
    project.commit("a check that waits", {"tools/wait.py": WAIT_FOR_GO})
    held = apply(project, tmp_path, "lint", project.make_patch({"calc.py": LINT_FAILS}))
    assert held["state"] == "awaiting_review"
    go.unlink()
    client = client_for()

    retried = client.post(f"/submissions/{held['id']}/retry", data={"csrf": csrf()})

    assert retried.status_code == 303  # answered while the wait check still waits
    assert Store().get(held["id"]).state == "validating"
    assert "<strong>validating</strong>" in client.get(f"/submissions/{held['id']}").get_data(as_text=True)
    again = client.post(f"/submissions/{held['id']}/retry", data={"csrf": csrf()})
    assert again.status_code == 409  # one validation of a submission at a time
    go.touch()
    assert until(lambda: Store().get(held["id"]).state == "awaiting_review")
    page = client.get(f"/submissions/{held['id']}").get_data(as_text=True)
    assert "retried by reviewer" in page and "<strong>awaiting_review</strong>" in page


# -- escaping ------------------------------------------------------------------------------


def xss_patch(project: GitRepo) -> bytes:
    """A mail whose subject, file name and added line are all `<script>alert(1)</script>`."""
    project.git("checkout", "-q", "-b", "xss")
    project.commit(XSS, {f"docs/{XSS}.txt": XSS + "\n"})
    patch = project.git("format-patch", "-1", "--stdout").encode()
    project.git("checkout", "-q", "main")
    return patch


@pytest.mark.slow
def test_a_patch_made_of_script_tags_is_shown_as_text(project: GitRepo, tmp_path: Path) -> None:
    sub = apply(project, tmp_path, "xss", xss_patch(project))
    client = client_for()
    escaped = html.escape(XSS)
    for path in ("/", f"/submissions/{sub['id']}", f"/?q={XSS}"):
        body = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in body, path
        assert escaped in body, path
    page = client.get(f"/submissions/{sub['id']}").get_data(as_text=True)
    assert f'<span class="filename">docs/{escaped}.txt</span>' in page  # the file name
    assert f'<td class="code">+{escaped}</td>' in page  # the added line
    assert f"#{sub['id']}</span> {escaped}</h1>" in page  # the title


# -- the real server --------------------------------------------------------------------------


@pytest.fixture
def server(empty_store: Store) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc, url = web_server.start()
    try:
        yield proc, url
    finally:
        web_server.stop(proc)


@pytest.mark.slow
def test_the_real_server_asks_for_its_token_and_stops_cleanly(server: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = server
    base, token = url.split("?token=")
    assert requests.get(base, timeout=30).status_code == 403
    assert requests.get(base + "?token=guess", timeout=30).status_code == 403
    session = requests.Session()
    answer = session.get(url, timeout=30)
    assert answer.status_code == 200 and answer.url == base and "Queue" in answer.text
    assert answer.headers["Server"] == "errauto"  # waitress, named so
    assert session.get(base + "changes", timeout=30).json() == {"change": 0}

    token_file = Path(os.environ["ERRAUTO_HOME"]) / "web-token"
    assert token_file.read_text().strip() == token
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert requests.get(base, params={"token": token_file.read_text().strip()}, timeout=30).status_code == 200

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not token_file.exists()


def test_a_non_loopback_address_needs_allow_remote(empty_store: Store) -> None:
    refused = cli("web", "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1 and "--allow-remote" in refused.stderr
    assert not (Path(os.environ["ERRAUTO_HOME"]) / "web-token").exists()


@pytest.mark.slow
def test_a_secret_in_a_check_log_is_redacted_again_when_shown(
        project: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = apply(project, tmp_path, "held", project.make_patch({"calc.py": TESTS_FAIL}))
    secret = "ghp_0123456789abcdefSECRET"
    monkeypatch.setenv("GITHUB_TOKEN", secret)
    checks = Store().checks(held["id"])
    failed = next(i for i, c in enumerate(checks) if c.status == "failed")
    log = checks[failed].log_path
    assert log is not None
    with open(log, "a") as f:  # as if written before the variable was known to be secret
        f.write(f"token used: {secret}\n")
    client = client_for()
    page = client.get(f"/submissions/{held['id']}").get_data(as_text=True)
    assert "token used: ***" in page and secret not in page
    whole = client.get(f"/submissions/{held['id']}/checks/{failed}/log").get_data(as_text=True)
    assert "token used: ***" in whole and secret not in whole
