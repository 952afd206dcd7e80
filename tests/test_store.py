"""The store's pieces, each on a real SQLite file: state changes with their events and
alerts, the field checks, migrations, the queries behind `status` and `monitor`, and
the rule that nothing outside the store touches the database."""
from __future__ import annotations

import inspect
import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from errauto_daemon import store as store_mod
from errauto_daemon.domain import CheckStatus, State
from errauto_daemon.errors import FatalError
from errauto_daemon.store import DECIDED, CheckRow, Store, StoreAPI, Submission
from errauto_daemon.store.db import _MIGRATIONS
from tests.helpers.gitrepo import ROOT


def new(store: Store, n: int = 1, *, repo: str = "/r", state: str = "queued") -> Submission:
    sub, created = store.insert_submission(
        repo=repo, target="main", source="cli", source_detail=None, title=f"patch {n}", author=None,
        note=None, patch_sha256="0" * 64, dedup_key=f"k{n}", state=State(state),
        reason="malformed" if state == "rejected" else None)
    assert created
    return sub


def rows(store: Store, sql: str, *args: object) -> list[tuple[object, ...]]:
    return store.sql(sql, *args)


# -- state changes, their events and their alerts ------------------------------------------


def test_a_decision_writes_its_state_event_and_alert_together(store: Store) -> None:
    sub = new(store)
    claimed = store.claim(sub.id)
    assert claimed is not None and claimed.state == "validating" and claimed.attempts == 1
    decided = store.transition(sub.id, State.AWAITING_REVIEW, route="review", confidence=0.4, detail="low score",
                               explanation={"route": "auto_merge"})
    assert (decided.state, decided.route, decided.confidence) == ("awaiting_review", "review", 0.4)
    assert decided.explanation == {"route": "auto_merge"} and decided.decided_at is not None
    events = rows(store, "SELECT kind, from_state, to_state, route, detail, duration IS NOT NULL FROM events "
                         "WHERE submission_id = ? ORDER BY id", sub.id)
    assert events == [("state", None, "queued", None, "cli", 0), ("state", "queued", "validating", None, None, 0),
                      ("state", "validating", "awaiting_review", "review", "low score", 1)]
    # The validation decided auto_merge, the submission ended in review: the auto-merge failed.
    (alert,) = store.alerts()
    assert (alert.kind, alert.level, alert.submission_id, alert.repo) == (
        "auto_merge_failed", "warning", sub.id, "/r")
    assert alert.data["from_state"] == "validating" and alert.data["detail"] == "low score"
    assert alert.data["state"] == "awaiting_review" and alert.data["confidence"] == 0.4


def test_a_transition_from_an_unexpected_state_writes_nothing(store: Store) -> None:
    sub = new(store)
    with pytest.raises(FatalError, match=f"submission {sub.id} is queued, not validating"):
        store.transition(sub.id, State.MERGED, expect=(State.VALIDATING,), route="auto_merge")
    assert store.get(sub.id).state == "queued"
    assert len(store.events(sub.id)) == 1 and store.alerts() == []
    with pytest.raises(FatalError, match="no submission 99"):
        store.transition(99, State.MERGED)


def test_a_duplicate_is_an_event_on_the_first_and_an_intake_rejection_alerts(store: Store) -> None:
    first = new(store)
    again, created = store.insert_submission(
        repo="/r", target="main", source="inbox", source_detail="a.patch", title="same", author=None, note=None,
        patch_sha256="0" * 64, dedup_key="k1")
    assert not created and again.id == first.id
    assert [e["kind"] for e in store.events(first.id)] == ["state", "duplicate"]
    rejected = new(store, 2, state="rejected")
    assert (rejected.state, rejected.route, rejected.reason) == ("rejected", "rejected", "malformed")
    assert [(a.kind, a.submission_id) for a in store.alerts()] == [("rejected", rejected.id)]


def test_claim_and_requeue_compare_and_set(store: Store) -> None:
    sub = new(store)
    assert store.claim(sub.id) is not None
    assert store.claim(sub.id) is None  # someone has it already
    assert store.requeue(sub.id, "shutdown", uncount_attempt=True)
    assert not store.requeue(sub.id, "again")  # it is queued, not validating
    back = store.get(sub.id)
    assert (back.state, back.attempts, back.merge_intent) == ("queued", 0, None)


# -- the field checks: real code, also under python -O ------------------------------------


@pytest.mark.parametrize("method, args, fields, message", [
    ("transition", ("merged",), {"attempts": 0}, "transition() got unknown field attempts"),
    ("transition", ("merged",), {"state": "queued", "route": "auto_merge"}, "transition() got unknown field state"),
    ("set_fields", (), {"route": "auto_merge"}, "set_fields() got unknown field route"),
])
def test_an_unknown_field_is_a_type_error_even_under_python_O(
        store: Store, method: str, args: tuple[str, ...], fields: dict[str, str | int], message: str) -> None:
    sub = new(store)
    store.claim(sub.id)
    with pytest.raises(TypeError, match=re.escape(message)):
        getattr(store, method)(sub.id, *args, **fields)
    assert rows(store, "SELECT state, attempts, route FROM submissions") == [("validating", 1, None)]
    # `python -O` drops asserts: the check must still stop the write.
    call = f"Store().{method}({sub.id}, *{args!r}, **{fields!r})"
    script = (f"from errauto_daemon.store import Store\n"
              f"try:\n    {call}\nexcept TypeError as exc:\n    print('refused:', exc)\n")
    proc = subprocess.run([sys.executable, "-O", "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"refused: {message}")
    assert rows(store, "SELECT state, attempts, route FROM submissions") == [("validating", 1, None)]


def test_an_unknown_state_or_alert_kind_is_a_value_error(store: Store) -> None:
    sub = new(store)
    with pytest.raises(ValueError, match="unknown state 'done'"):
        store.transition(sub.id, "done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown alert kind 'loud'"):
        store.add_alert("loud", "x")
    with pytest.raises(ValueError, match="unknown alert kind 'loud'"):
        store.add_event(sub.id, "note", "x", alert="loud")
    assert len(store.events(sub.id)) == 1 and store.alerts() == []


# -- migrations -------------------------------------------------------------------------


def _old_database(path: Path, version: int) -> None:
    """A database as errauto `version` left it, with one submission awaiting review."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(path)
    scripts = [store_mod._SCHEMA, *(_MIGRATIONS[v] for v in range(2, version + 1))]
    for script in scripts:
        code = "\n".join(line for line in script.splitlines() if not line.strip().startswith("--"))
        for statement in code.split(";"):
            if statement.strip():
                old.execute(statement)
    old.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    old.execute("INSERT INTO submissions (repo, target, source, title, patch_sha256, dedup_key, state, "
                "created_at, updated_at) VALUES ('/r', 'main', 'cli', 'old', 'x', 'k', 'awaiting_review', 1, 1)")
    old.execute("INSERT INTO repos (path, added_at) VALUES ('/r', 1)")
    old.commit()
    old.close()


def _tables(store: Store) -> set[str]:
    return {str(r[0]) for r in rows(store, "SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6])
def test_an_older_database_is_migrated_to_the_current_schema(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old" / "errauto.db"
    _old_database(path, version)
    fresh = Store(tmp_path / "fresh" / "errauto.db")
    store = Store(path)
    assert rows(store, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(store_mod.SCHEMA_VERSION),)]
    assert _tables(store) == _tables(fresh)
    assert {"outbox", "deliveries", "inbox_files", "config_problems", "flaky_tests"} <= _tables(store)
    # The old row is there and works with every new column.
    assert store.get(1).title == "old" and store.get(1).claimed_at is None and store.get(1).remote is None
    assert store.repos() == ["/r"]  # registered before repositories were per machine: still this one's
    assert store.add_repo("/r", "/srv/git/app") is False and store.clone_of("/srv/git/app") == "/r"
    store.add_inbox_file(1, "/r", "/inbox/old.patch")
    store.transition(1, State.REJECTED, reason="no")
    assert [a.kind for a in store.alerts()] == ["rejected"]
    assert [f.path for f in store.inbox_files(1)] == ["/inbox/old.patch"]
    store.set_baseline("/r", "t" * 40, "tests", "fp", None, {"t.py::a": "passed"})
    assert store.baseline_tests("/r", "t" * 40, "tests", "fp") == {"t.py::a": "passed"}
    Store(path)  # opening it again changes nothing
    assert rows(store, "SELECT COUNT(*) FROM meta") == [(1,)]


def test_a_database_from_a_newer_errauto_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "errauto.db"
    Store(path).conn.execute("UPDATE meta SET value = '99'")
    with pytest.raises(FatalError, match=f"schema 99, this one knows {store_mod.SCHEMA_VERSION}"):
        Store(path)


# -- the queries behind status and monitor ----------------------------------------------


def _decide(store: Store, n: int, state: str, *, route: str | None = None, conf: float | None = None,
            repo: str = "/r", source: str = "cli") -> int:
    sub, _ = store.insert_submission(repo=repo, target="main", source=source, source_detail=None,
                                     title=f"p{n}", author=None, note=None, patch_sha256="0" * 64,
                                     dedup_key=f"q{n}")
    if state != "queued":
        store.claim(sub.id)
    if state not in ("queued", "validating"):
        store.transition(sub.id, State(state), route=route, confidence=conf)
    return sub.id


def test_the_queries_count_the_window_and_the_backlog(store: Store) -> None:
    since = time.time() - 60
    _decide(store, 1, "merged", route="auto_merge", conf=0.9, repo="/a", source="inbox")
    _decide(store, 2, "merged", route="auto_merge", conf=0.95, repo="/a", source="inbox")
    _decide(store, 3, "awaiting_review", route="review", conf=0.2)
    _decide(store, 4, "failed")
    _decide(store, 5, "validating")
    _decide(store, 6, "queued")
    counts = {(c.state, c.route, c.source, c.repo): c.count for c in store.window_counts(since)}
    assert counts == {("merged", "auto_merge", "inbox", "/a"): 2, ("awaiting_review", "review", "cli", "/r"): 1,
                      ("failed", None, "cli", "/r"): 1, ("validating", None, "cli", "/r"): 1,
                      ("queued", None, "cli", "/r"): 1}
    assert store.window_counts(time.time() + 60) == []
    assert store.confidences(since) == [0.2, 0.9, 0.95]
    (today,) = store.decisions_per_day(since)
    assert (today.date, today.decided, today.merged) == (time.strftime("%Y-%m-%d"), 4, 2)
    durations = store.validation_durations(since)
    assert len(durations) == 4 and durations == sorted(durations) and all(d >= 0 for d in durations)
    assert store.failure_counts(since) == (4, 1)
    queue = store.backlog((State.QUEUED, State.VALIDATING))
    review = store.backlog((State.AWAITING_REVIEW,))
    assert (queue.count, review.count) == (2, 1) and queue.oldest_created_at is not None
    assert store.backlog((State.PR_OPEN,)).oldest_created_at is None
    assert store.count(DECIDED) == 4
    assert store.counts()["route"] == {"auto_merge": 2, "review": 1}


def test_next_attempt_and_open_pull_requests_due(store: Store) -> None:
    sub = _decide(store, 1, "pr_open", route="pull_request")
    assert store.next_attempt(sub) == 1
    store.record_checks(sub, 1, "b" * 40, [CheckRow("tests", 1, CheckStatus.PASSED, 0, 1.0, 1.0, 1.0, None, None, None)])
    assert store.next_attempt(sub) == 2
    assert store.pr_open_due(time.time() + 1, 10) == []  # no pull request number yet
    store.set_fields(sub, pr_number=7, pr_url="https://example.invalid/7")
    assert store.pr_open_due(time.time() + 1, 10) == [sub]
    assert store.pr_open_due(time.time() - 3600, 10) == []  # looked at just now


def test_undelivered_counts_unrouted_pending_and_failed_alerts(store: Store) -> None:
    assert store.undelivered() == {"pending": 0, "oldest": None, "failed": 0}
    first = store.add_alert("daemon_error", "one")
    second = store.add_alert("daemon_error", "two")
    store.add_alert("daemon_error", "three")
    store.route_alerts({first: ["jsonl", "slack:X"], second: ["jsonl"]})
    store.delivered("jsonl", [first, second])
    store.delivered("slack:X", [first], failed="gone")
    found = store.undelivered()
    assert (found["pending"], found["failed"]) == (1, 1) and found["oldest"] is not None
    assert store.failed_deliveries_since(time.time() - 60) == 1
    assert store.failed_deliveries_since(time.time() + 60) == 0


# -- the shape of the package -------------------------------------------------------------


def test_the_protocol_describes_every_public_method_of_the_store() -> None:
    public = {n for n, v in inspect.getmembers(Store) if not n.startswith("_") and callable(v)}
    described = {n for n in dir(StoreAPI) if not n.startswith("_")}
    assert public == described, (public - described, described - public)


def test_no_sql_and_no_connection_outside_the_store() -> None:
    package = ROOT / "errauto_daemon"
    sql = re.compile(r"""\.conn\b|\bsqlite3\b|\.execute(many)?\(["']|["'](SELECT|INSERT|UPDATE|DELETE|PRAGMA) """)
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in sorted(package.rglob("*.py")) if "store" not in path.relative_to(package).parts
             for n, line in enumerate(path.read_text().splitlines(), 1) if sql.search(line)]
    assert found == []


def test_alerts_imports_nothing_of_errauto_but_its_words() -> None:
    script = ("import json, sys, errauto_daemon.alerts\n"
              "print(json.dumps(sorted(m for m in sys.modules if m.startswith('errauto_daemon'))))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert json.loads(proc.stdout) == ["errauto_daemon", "errauto_daemon.alerts", "errauto_daemon.domain"]
