"""Alerts: the outbox, alerts.jsonl, and Slack (tests/helpers/fake_slack.py on 127.0.0.1)."""
from __future__ import annotations

import email.utils
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from errauto_daemon import checks, config, notify, paths
from errauto_daemon.config import AlertsConfig
from errauto_daemon.domain import State
from errauto_daemon.main import main
from errauto_daemon.store import Store, Submission
from tests.helpers.fake_slack import SECRET_PATH, FakeSlack
from tests.helpers.gitrepo import config_toml, python_project

FAST = notify.Policy(timeout=(1.0, 1.0), min_interval=0.2, backoff=0.05, max_backoff=0.5,
                     breaker_after=3, breaker_cooldown=0.6)
TITLE = "Fix the off-by-one in calc.add"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def defaults(repo: str, target: str | None) -> AlertsConfig:
    return AlertsConfig()


def sender(store: Store, url: str | None, policy: notify.Policy = FAST) -> notify.Sender:
    env = {"SLACK_WEBHOOK_URL": url} if url else {}
    return notify.Sender(store, policy=policy, env=env,
                         router=notify.Router(store, env=env, loader=defaults))


def decided(store: Store, title: str = TITLE, *, state: str = "merged", route: str = "auto_merge",
            confidence: float = 0.97, repo: str = "/srv/git/project") -> Submission:
    sub, _ = store.insert_submission(
        repo=repo, target="main", source="inbox", source_detail="fix.patch", title=title, author=None,
        note=None, patch_sha256="0" * 64, dedup_key=f"k:{title}")
    store.claim(sub.id)
    return store.transition(sub.id, State(state), route=route, confidence=confidence,
                            explanation={"route": route}, reason=f"confidence {confidence:.2f}")


def states(store: Store, sink: str) -> list[str]:
    return [d["state"] for a in store.alerts() for d in store.deliveries(a.id) if d["sink"] == sink]


# -- Slack ----------------------------------------------------------------------------


def test_an_auto_merge_reaches_slack_and_the_log_readably(slack: FakeSlack) -> None:
    store = Store()
    sub = decided(store)
    s = sender(store, slack.url)
    assert s.drain(5)

    (msg,) = slack.received
    assert msg.status == 200 and msg.headers["content-type"] == "application/json"
    assert f"Auto-merged*  #{sub.id} {TITLE}" in msg.text
    assert "route `auto_merge`" in msg.text and "confidence *0.97*" in msg.text
    assert "`main` in `project`" in msg.text
    assert states(store, "jsonl") == ["sent"] and states(store, "slack:SLACK_WEBHOOK_URL") == ["sent"]
    (line,) = notify.read_jsonl(notify.alerts_path())
    assert line["kind"] == "auto_merged" and line["submission"] == sub.id and line["level"] == "info"
    assert line["summary"] == f"Auto-merged: #{sub.id} {TITLE} (route auto_merge, confidence 0.97, into main)"
    assert line["data"]["confidence"] == 0.97 and line["id"] == store.alerts()[0].id


def test_review_needed_and_pull_request_say_how_to_act(slack: FakeSlack) -> None:
    store = Store()
    review = decided(store, "needs eyes", state="awaiting_review", route="review", confidence=0.42)
    pr = decided(store, "a pull request", state="pr_open", route="pull_request", confidence=0.86)
    store.set_fields(pr.id, pr_url="https://github.com/octo/project/pull/7", pr_number=7)
    store.transition(pr.id, State.MERGED, route="pull_request", detail="pull request #7 merged")
    assert sender(store, slack.url).drain(5)
    text = "\n".join(r.text for r in slack.received)
    assert f"`errauto queue approve {review.id}`" in text and "Review needed" in text
    assert "Pull request opened" in text and "review and merge" in text
    assert "<https://github.com/octo/project/pull/7|pull request #7>" in text  # merged: the link


def test_a_hostile_title_cannot_mention_or_link(slack: FakeSlack) -> None:
    store = Store()
    decided(store, "<!channel> see <https://evil.example|this> & more")
    assert sender(store, slack.url).drain(5)
    text = slack.received[0].text
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; see &lt;https://evil.example|this&gt; &amp; more" in text


def test_escape_sequences_in_a_title_reach_slack_escaped(slack: FakeSlack) -> None:
    store = Store()
    decided(store, "Fix \x1b]0;owned\x07it\x1b[2J \u202eedoc")
    assert sender(store, slack.url).drain(5)
    text = slack.received[0].text
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "Fix \\x1b]0;owned\\x07it\\x1b[2J \\u202eedoc" in text


def test_a_burst_becomes_few_messages_at_most_one_a_second(slack: FakeSlack) -> None:
    store = Store()
    for i in range(25):
        decided(store, f"patch {i}")
    s = sender(store, slack.url, notify.Policy(timeout=(1.0, 1.0)))  # the real pace: one a second
    assert s.drain(10)
    first, second = slack.received
    assert first.text.startswith("20 errauto alerts") and len(first.body["blocks"]) == 20
    assert second.text.startswith("5 errauto alerts") and "patch 24" in second.text
    assert second.at - first.at >= 0.95
    assert states(store, "slack:SLACK_WEBHOOK_URL") == ["sent"] * 25


def test_429_waits_for_retry_after(slack: FakeSlack) -> None:
    store = Store()
    decided(store)
    slack.answer(429, "rate_limited", headers={"Retry-After": "1"})
    s = sender(store, slack.url)
    assert s.drain(5)
    limited, ok = slack.received
    assert (limited.status, ok.status) == (429, 200)
    assert ok.at - limited.at >= 1.0
    sink = store.sink_state("slack:SLACK_WEBHOOK_URL")
    assert sink["failures"] == 0  # a rate limit is not a failure of the webhook
    (alert,) = store.alerts()
    (d,) = [d for d in store.deliveries(alert.id) if d["sink"].startswith("slack")]
    assert d["state"] == "sent" and d["attempts"] == 2


@pytest.mark.parametrize("value, expected", [
    ("7", 7.0), ("0", 0.0), (None, 30.0), ("soon", 30.0),
    (email.utils.formatdate(1000.0 + 42, usegmt=True), 42.0),
])
def test_retry_after_is_seconds_or_a_date(value: str | None, expected: float) -> None:
    assert notify.retry_after(value, 30.0, now=1000.0) == pytest.approx(expected, abs=1)


def test_5xx_is_retried_with_exponential_backoff_then_delivered(slack: FakeSlack) -> None:
    store = Store()
    decided(store)
    slack.answer(500, "internal_error")
    slack.answer(503, "")
    slack.answer(502, "bad gateway", times=2)
    s = sender(store, slack.url, notify.Policy(timeout=(1.0, 1.0), min_interval=0.0, backoff=0.1,
                                               breaker_after=10))
    assert s.drain(10)
    got = slack.received
    assert [r.status for r in got] == [500, 503, 502, 502, 200]
    gaps = [b.at - a.at for a, b in zip(got, got[1:])]
    for gap, wanted in zip(gaps, (0.1, 0.2, 0.4, 0.8)):
        assert wanted <= gap < wanted + 0.5, gaps
    assert states(store, "slack:SLACK_WEBHOOK_URL") == ["sent"]
    assert store.sink_state("slack:SLACK_WEBHOOK_URL")["failures"] == 0


def test_404_is_not_retried_but_recorded(slack: FakeSlack) -> None:
    store = Store()
    decided(store)
    s = sender(store, slack.url.replace(SECRET_PATH, "/services/T0/B0/revoked000000"))
    assert s.drain(3)
    (only,) = slack.received
    assert only.status == 404
    time.sleep(0.3)
    s.deliver_due()
    assert slack.count() == 1  # never sent again
    (alert,) = store.alerts()
    (d,) = [d for d in store.deliveries(alert.id) if d["sink"].startswith("slack")]
    assert d["state"] == "failed" and d["attempts"] == 1
    assert d["error"] == "Slack refused the message (HTTP 404: no_service)"
    assert store.undelivered() == {"pending": 0, "oldest": None, "failed": 1}
    assert states(store, "jsonl") == ["sent"]  # the log has it all the same


def test_repeated_failures_open_the_circuit_and_one_success_closes_it(slack: FakeSlack) -> None:
    store = Store()
    decided(store, "first")
    slack.answer(500, "", times=3)
    s = sender(store, slack.url)
    deadline = time.monotonic() + 5
    while slack.count() < 3 and time.monotonic() < deadline:
        s.deliver_due()
        time.sleep(0.01)
    sink = store.sink_state("slack:SLACK_WEBHOOK_URL")
    assert sink["failures"] == 3 and sink["open_until"] > time.time()
    assert sink["last_error"] == "Slack failed (HTTP 500)"
    opened = time.monotonic()
    decided(store, "second")  # waits with the first while the circuit is open
    while time.monotonic() - opened < 0.4:
        s.deliver_due()
        time.sleep(0.02)
    assert slack.count() == 3
    assert s.drain(3)
    last = slack.received[-1]
    assert last.status == 200 and "first" in last.text and "second" in last.text
    assert last.at - opened >= 0.5
    sink = store.sink_state("slack:SLACK_WEBHOOK_URL")
    assert sink["failures"] == 0 and sink["open_until"] is None and sink["last_ok_at"]


def test_a_slack_that_does_not_answer_in_time_is_tried_again(slack: FakeSlack) -> None:
    store = Store()
    decided(store)
    slack.answer(200, "ok", delay=1.0)
    s = sender(store, slack.url, notify.Policy(timeout=(0.5, 0.3), min_interval=0.0, backoff=0.05))
    assert s.drain(5)
    assert len(slack.received) == 2
    (alert,) = store.alerts()
    (d,) = [d for d in store.deliveries(alert.id) if d["sink"].startswith("slack")]
    assert d["state"] == "sent" and d["attempts"] == 2 and d["error"] == "Slack did not answer in time"


def test_no_webhook_variable_means_the_log_only() -> None:
    store = Store()
    decided(store)
    assert sender(store, None).drain(3)
    (alert,) = store.alerts()
    assert [d["sink"] for d in store.deliveries(alert.id)] == ["jsonl"]
    assert len(notify.read_jsonl(notify.alerts_path())) == 1


def test_kinds_turned_off_in_the_repositorys_config_go_nowhere(tmp_path: Path, slack: FakeSlack) -> None:
    project = python_project(tmp_path / "project", config=config_toml(
        extra='[alerts]\nwebhook_env = "TEAM_SLACK"\ndisabled = ["rejected"]\njsonl = false\n'))
    store = Store()
    decided(store, "kept", repo=str(project.path))
    decided(store, "dropped", state="rejected", route="rejected", repo=str(project.path))
    env = {"TEAM_SLACK": slack.url}
    assert notify.Sender(store, policy=FAST, env=env).drain(5)
    (msg,) = slack.received
    assert "kept" in msg.text and "dropped" not in msg.text
    kept, dropped = store.alerts()
    assert [d["sink"] for d in store.deliveries(kept.id)] == ["slack:TEAM_SLACK"]
    assert store.deliveries(dropped.id) == []
    assert not notify.alerts_path().exists()


def test_only_one_process_delivers_at_a_time(slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    store = Store()
    decided(store)
    held = notify.OutboxLock()
    assert held.acquire()
    try:
        assert notify.flush(store, 1.0, policy=FAST) is None  # the holder delivers, not us
        assert slack.count() == 0
    finally:
        held.release()
    assert notify.flush(store, 5.0, policy=FAST) is True
    assert slack.count() == 1


def test_two_senders_on_one_database_deliver_each_alert_once(slack: FakeSlack) -> None:
    """Two daemons sharing a server database each run a sender (each holds its own machine's outbox
    lock): a delivery one of them took is not taken by the other."""
    store = Store()
    titles = [f"fix number {i:02d} done" for i in range(12)]
    for title in titles:
        decided(store, title)
    senders = [sender(Store(store.where), slack.url) for _ in range(2)]
    done: list[bool] = []
    threads = [threading.Thread(target=lambda s=s: done.append(s.drain(30))) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in senders:
        s.close()
    # Each drained what it could; one may have stopped waiting on what the other still held.
    assert True in done
    blocks = " ".join(b.get("text", {}).get("text", "") for m in slack.received for b in m.body["blocks"])
    assert [blocks.count(title) for title in titles] == [1] * len(titles)  # a block per alert, once
    ids = [r["id"] for r in notify.read_jsonl(notify.alerts_path())]
    assert sorted(ids) == sorted(a.id for a in store.alerts()) and len(ids) == len(set(ids)) == 12
    assert set(states(store, "jsonl")) == set(states(store, "slack:SLACK_WEBHOOK_URL")) == {"sent"}


def test_a_delivery_taken_by_a_sender_that_died_is_due_again_after_its_lease() -> None:
    store = Store()
    decided(store)
    store.route_alerts({a.id: ["jsonl"] for a in store.unrouted_alerts()})
    now = time.time()
    (taken,) = store.claim_deliveries("jsonl", now, 10, lease=30)
    assert store.claim_deliveries("jsonl", now + 29, 10) == []  # still the first taker's
    assert [a.id for a in store.claim_deliveries("jsonl", now + 31, 10)] == [taken.id]


# -- alerts.jsonl ------------------------------------------------------------------------


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_fresh_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    notify.append_jsonl(path, [{"id": 1, "kind": "merged"}])
    with open(path, "ab") as fh:
        fh.write(b'{"id": 2, "kind": "rev')  # a writer killed mid-line
    assert [r["id"] for r in notify.read_jsonl(path)] == [1]
    notify.append_jsonl(path, [{"id": 3, "kind": "rejected"}, {"id": 4, "kind": "merged"}])
    lines = path.read_bytes().split(b"\n")
    assert lines[1] == b'{"id": 2, "kind": "rev' and lines[2].startswith(b'{"id": 3')
    assert [r["id"] for r in notify.read_jsonl(path)] == [1, 3, 4]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_appends_from_many_writers_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"

    def write(n: int) -> None:
        for i in range(50):
            notify.append_jsonl(path, [{"writer": n, "i": i, "pad": "x" * 5000}])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = notify.read_jsonl(path)
    assert len(records) == 200 and len(path.read_bytes().splitlines()) == 200


# -- the webhook URL is a secret ------------------------------------------------------------


def test_the_webhook_url_is_never_written_or_given_to_checks(
        tmp_path: Path, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connection refused
    unreachable = f"http://127.0.0.1:{port}{SECRET_PATH}"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", unreachable)
    caplog.set_level(logging.DEBUG)
    store = Store()
    decided(store, "sent nowhere")
    s = notify.Sender(store, policy=FAST)  # the real router and environment
    for _ in range(3):
        s.deliver_due()
        time.sleep(0.06)
    (alert,) = store.alerts()
    (d,) = [d for d in store.deliveries(alert.id) if d["sink"].startswith("slack")]
    assert d["state"] == "pending" and d["error"] == "cannot reach Slack (ConnectionError)"
    # A 404 body and a failing path are recorded too; then the real thing.
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    slack.answer(404, f"no_service for {SECRET_PATH}")
    decided(store, "refused")
    s2 = notify.Sender(store, policy=notify.Policy(timeout=(1.0, 1.0), min_interval=0.0, backoff=0.01))
    assert s2.drain(5)
    s.close()
    s2.close()
    assert any(d["error"] and "***" in d["error"] for a in store.alerts() for d in store.deliveries(a.id))

    # The check environment never has it, whatever the variable is called.
    project = python_project(tmp_path / "project", config=config_toml(extra='[alerts]\nwebhook_env = "TEAM_HOOK"\n'))
    monkeypatch.setenv("TEAM_HOOK", slack.url)
    cfg = config.load(project.pygit2())
    assert "TEAM_HOOK" in cfg.secrets() and "SLACK_WEBHOOK_URL" in cfg.secrets()
    env = checks.check_env(cfg.secrets(), {})
    assert "TEAM_HOOK" not in env and "SLACK_WEBHOOK_URL" not in env
    assert slack.url not in json.dumps(env)

    store.close()
    secrets = [unreachable, slack.url, SECRET_PATH]
    assert not any(s in caplog.text for s in secrets), caplog.text
    for path in paths.state_dir().rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), path


# -- end to end: the daemon's sender, killed mid-delivery ------------------------------------


@pytest.mark.slow
def test_the_daemon_delivers_and_a_kill_mid_delivery_only_delays_it(
        tmp_path: Path, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers.daemon import DaemonProcess, drop, wait_until
    from tests.test_daemon import FIXED, trivial_config

    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    project = python_project(tmp_path / "project", config=trivial_config())
    assert main(["watch", "add", str(project.path)]) == 0
    slack.answer(200, "ok", delay=30.0)  # the first message hangs in flight
    daemon = DaemonProcess(tmp_path / "daemon-output.log")
    daemon.args.append("--verbose")
    daemon.start()
    try:
        drop(project.path / "patches", "fix.patch", project.make_patch({"calc.py": FIXED}))
        (first,) = slack.wait(1, timeout=30)
        assert "Auto-merged*  #1 fix" in first.text and "confidence *1.00*" in first.text
        store = Store()
        (alert,) = [a for a in store.alerts() if a.kind == "auto_merged"]
        assert [d["state"] for d in store.deliveries(alert.id)] == ["sent", "pending"]  # jsonl, slack
        daemon.kill()  # SIGKILL while Slack has the request and has not answered
        daemon.start()
        wait_until(lambda: [d["state"] for d in store.deliveries(alert.id)] == ["sent", "sent"],
                   timeout=30, what="delivery after the restart")
        again = slack.received[1:]  # sent again after the restart: at least once
        assert any("#1 fix" in r.text and r.status == 200 for r in again), again
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
    store.close()
    records = notify.read_jsonl(notify.alerts_path())
    assert [r["kind"] for r in records].count("auto_merged") == 1
    for path in [*paths.state_dir().rglob("*"), tmp_path / "daemon-output.log"]:
        if path.is_file():
            data = path.read_bytes()
            assert slack.url.encode() not in data and SECRET_PATH.encode() not in data, path
    assert (paths.log_dir() / "daemon.log").read_text()  # the log exists and was grepped
