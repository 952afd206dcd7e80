"""The outbox: which state changes raise alerts, in their own transaction; the
schema migration; the [alerts], [monitor] and [status] settings."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from errauto_daemon import config, redact
from errauto_daemon import store as store_mod
from errauto_daemon.domain import State
from errauto_daemon.errors import EXIT_CONFIG, ConfigError
from errauto_daemon.health import Thresholds
from errauto_daemon.store import Store, alert_for
from tests.helpers.gitrepo import GitRepo


@pytest.mark.parametrize("change, kind", [
    ((None, "queued", None, None), None),
    (("queued", "validating", None, None), None),
    (("validating", "merged", "auto_merge", "auto_merge"), "auto_merged"),
    (("awaiting_review", "merged", "review", "review"), "merged"),
    (("pr_open", "merged", "pull_request", "pull_request"), "merged"),
    (("validating", "pr_open", "pull_request", "pull_request"), "pr_opened"),
    (("pr_open", "pr_open", "pull_request", "pull_request"), None),
    (("validating", "awaiting_review", "review", "review"), "review_needed"),
    (("validating", "awaiting_review", "review", "auto_merge"), "auto_merge_failed"),
    (("validating", "rejected", "rejected", None), "rejected"),
    ((None, "rejected", "rejected", None), "rejected"),
    (("validating", "failed", None, None), "daemon_error"),
    (("validating", "queued", None, None), None),
])
def test_which_state_changes_raise_which_alert(change: tuple[str | None, str, str | None, str | None],
                                                kind: str | None) -> None:
    assert alert_for(*change) == kind


def test_the_alert_is_written_in_the_transaction_of_its_state_change() -> None:
    store = Store()
    sub, _ = store.insert_submission(repo="/r", target="main", source="cli", source_detail=None,
                                     title="t", author=None, note=None, patch_sha256="0" * 64, dedup_key="k")
    store.claim(sub.id)
    if store.path is None:  # a server: the same refusal, in its own words
        store.sql("CREATE FUNCTION no_alerts() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'outbox is full'; "
                  "END $$ LANGUAGE plpgsql")
        store.sql("CREATE TRIGGER no_alerts BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION no_alerts()")
        refused: type[Exception] = psycopg.errors.RaiseException
    else:
        store.conn.execute("CREATE TEMP TRIGGER no_alerts BEFORE INSERT ON outbox "
                           "BEGIN SELECT RAISE(ABORT, 'outbox is full'); END")
        refused = sqlite3.IntegrityError
    with pytest.raises(refused, match="outbox is full"):
        store.transition(sub.id, State.MERGED, route="auto_merge")
    # Neither happened: the state change did not happen without its alert.
    assert store.get(sub.id).state == "validating"
    assert [e["to_state"] for e in store.events(sub.id)] == ["queued", "validating"]
    store.sql("DROP TRIGGER no_alerts" + (" ON outbox" if store.path is None else ""))
    store.transition(sub.id, State.MERGED, route="auto_merge")
    (alert,) = store.alerts()
    assert (alert.kind, alert.submission_id, alert.data["title"]) == ("auto_merged", sub.id, "t")


def test_github_route_alerts_go_through_the_outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers.fake_github import FakeGitHub
    from tests.test_github import PR_PATCH, TOKEN, World

    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    remote = GitRepo(tmp_path / "remote.git", bare=True)
    with FakeGitHub(remote.path, token=TOKEN) as fake:
        world = World(tmp_path, fake, remote, capsys)
        world.make_project()
        fake.allow_auto_merge = False
        code, result = world.apply(PR_PATCH)
    assert code == 0 and result["state"] == "pr_open"
    kinds = [(a.kind, a.submission_id) for a in Store().alerts()]
    assert kinds == [("auto_merge_failed", result["id"]), ("pr_opened", result["id"])]
    (event,) = world.events(result["id"], "alert")  # the event is kept too
    assert Store().alerts()[0].data["detail"] == event


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state" / "errauto.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(path)
    for statement in store_mod._SCHEMA.split(";"):
        if statement.strip():
            old.execute(statement)
    old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    old.execute("INSERT INTO submissions (repo, target, source, title, patch_sha256, dedup_key, state, "
                "created_at, updated_at) VALUES ('/r', 'main', 'cli', 'old', 'x', 'k', 'awaiting_review', 1, 1)")
    old.commit()
    old.close()

    store = Store(path)
    assert store.conn.execute("SELECT value FROM meta").fetchone()[0] == str(store_mod.SCHEMA_VERSION) == "7"
    assert store.get(1).title == "old"
    store.transition(1, State.REJECTED, reason="no")
    assert [a.kind for a in store.alerts()] == ["rejected"]
    indexes = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"submissions_window", "events_submission_state", "outbox_unrouted", "inbox_files_submission"} <= indexes
    Store(path)  # opening again changes nothing


def test_a_url_secret_is_redacted_with_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://hooks.slack.com/services/T0AAAA/B0BBBB/cCcCcCcCcCcC"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
    # requests and urllib3 quote the path without the host.
    text = f"POST {url} failed; Max retries exceeded with url: /services/T0AAAA/B0BBBB/cCcCcCcCcCcC"
    assert redact.redact(text) == "POST *** failed; Max retries exceeded with url: ***"


@pytest.mark.parametrize("text, key", [
    ("[monitor]\nbacklog_warning = 'ten'\n", "monitor.backlog_warning"),
    ("[monitor]\nbacklog_warning = 2.5\n", "monitor.backlog_warning"),
    ("[monitor]\nbacklog_critical = 5\n", "monitor.backlog_critical"),
    ("[monitor]\noldest_warning_hours = -1\n", "monitor.oldest_warning_hours"),
    ("[monitor]\nfailure_rate_critical = 1.5\n", "monitor.failure_rate_critical"),
    ("[monitor]\nheartbeat_warning_seconds = 200\n", "monitor.heartbeat_warning_seconds"),
    ("[monitor]\npager = true\n", "monitor.pager"),
    ("[alerts]\nwebhook_env = 'not a name'\n", "alerts.webhook_env"),
    ("[alerts]\ndisabled = ['merges']\n", "alerts.disabled"),
    ("[alerts]\njsonl = 'yes'\n", "alerts.jsonl"),
    ("[alerts]\nwebhook_url = 'https://hooks.slack.com/x'\n", "alerts.webhook_url"),
    ("[status]\nminutes_per_manual_patch = -5\n", "status.minutes_per_manual_patch"),
    ("[status]\nhours = 1\n", "status.hours"),
    ("alerts = 3\n", "alerts"),
])
def test_bad_alert_monitor_and_status_settings_name_the_key(repo: GitRepo, text: str, key: str) -> None:
    repo.commit("config", {".errauto.toml": text})
    with pytest.raises(ConfigError) as info:
        config.load(repo.pygit2())
    assert key in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == EXIT_CONFIG


def test_good_settings_load(repo: GitRepo) -> None:
    repo.commit("config", {".errauto.toml": (
        "[alerts]\nwebhook_env = 'TEAM_SLACK'\ndisabled = ['rejected', 'auto_merged']\njsonl = false\n"
        "[monitor]\nbacklog_warning = 3\nbacklog_critical = 9\noldest_warning_hours = 0.5\n"
        "[status]\nminutes_per_manual_patch = 25\n")})
    cfg = config.load(repo.pygit2())
    assert cfg.alerts.webhook_env == "TEAM_SLACK" and not cfg.alerts.enabled("rejected")
    assert cfg.alerts.enabled("review_needed") and cfg.alerts.jsonl is False
    assert (cfg.monitor.backlog_warning, cfg.monitor.backlog_critical) == (3, 9)
    assert cfg.monitor.oldest_warning_hours == 0.5 and cfg.monitor.oldest_critical_hours == 72
    assert cfg.status.minutes_per_manual_patch == 25
    assert config.with_thresholds(cfg, 0.9, None).alerts == cfg.alerts
    both = Thresholds.strictest([cfg.monitor, Thresholds(backlog_warning=5, backlog_critical=6)])
    assert (both.backlog_warning, both.backlog_critical) == (3, 6)
