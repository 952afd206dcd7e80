"""errauto's durable state: one SQLite file in WAL mode, plus patch bytes on disk.

Tables:
  submissions  one row per distinct patch per target; its state and decision
  checks       every check run, per submission and attempt
  events       every state transition, timestamped; metrics come from here
  repos        repositories registered with `errauto init` / `watch add`
  outbox       alerts, written in the same transaction as the change that caused them
  deliveries   each alert's delivery to each sink (alerts.jsonl, a Slack webhook)
  sinks        each sink's retry and circuit-breaker state
  monitor      the last level `errauto monitor` saw and alerted, and its thresholds
  inbox_files  each file taken from an inbox folder: its submission and where it lies now
  meta         schema version

A submission's life:

    queued -> validating -> merged | pr_open | awaiting_review | rejected | failed
    awaiting_review -> merged | pr_open | rejected       (a person decides)

Every write happens in a transaction; state changes check the state they
expect to leave (compare-and-set), so two processes can never both claim or
decide one submission. A state change worth telling people about writes its
alert into `outbox` in that same transaction (`alert_for` decides which), so
an alert can neither be lost nor sent for a change that did not happen.

The schema is versioned: a new database gets `_SCHEMA` and then every
migration in `_MIGRATIONS`; an older one gets the migrations it lacks, in
the transaction that opens it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errauto_daemon import paths
from errauto_daemon.alerts import ALERT_KINDS as ALERT_KINDS  # re-exported: callers import it from here
from errauto_daemon.alerts import ALERT_LEVELS
from errauto_daemon.errors import ConfigError, FatalError
from errauto_daemon.openfiles import try_lock

SCHEMA_VERSION = 3

STATES = ("queued", "validating", "merged", "pr_open", "awaiting_review", "rejected", "failed")
DECIDED = ("merged", "pr_open", "awaiting_review", "rejected", "failed")
FINAL = ("merged", "rejected", "failed")


_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE repos (
    path TEXT PRIMARY KEY,
    added_at REAL NOT NULL
);
CREATE TABLE submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    source_detail TEXT,
    title TEXT NOT NULL,
    author TEXT,
    note TEXT,
    patch_sha256 TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    state TEXT NOT NULL,
    route TEXT,
    confidence REAL,
    explanation TEXT,
    reason TEXT,
    base_commit TEXT,
    result_tree TEXT,
    merged_commit TEXT,
    merge_intent TEXT,
    pr_url TEXT,
    pr_number INTEGER,
    pr_state TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    decided_at REAL
);
CREATE UNIQUE INDEX submissions_dedup ON submissions (repo, target, dedup_key);
CREATE INDEX submissions_state ON submissions (state, created_at);
CREATE TABLE checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id INTEGER NOT NULL REFERENCES submissions (id),
    attempt INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    duration REAL NOT NULL,
    score REAL NOT NULL,
    weight REAL NOT NULL,
    detail TEXT,
    log_path TEXT,
    base_commit TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX checks_submission ON checks (submission_id, attempt);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id INTEGER REFERENCES submissions (id),
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    route TEXT,
    detail TEXT
);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_submission ON events (submission_id);
CREATE TABLE validations (
    base_tree TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    result_tree TEXT NOT NULL,
    results TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (base_tree, dedup_key, fingerprint)
);
CREATE TABLE daemon (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    stopped_at REAL
);
CREATE TABLE refs_seen (
    repo TEXT NOT NULL,
    ref TEXT NOT NULL,
    sha TEXT NOT NULL,
    submission_id INTEGER,
    seen_at REAL NOT NULL,
    PRIMARY KEY (repo, ref)
);
CREATE TABLE baselines (
    repo TEXT NOT NULL,
    base_tree TEXT NOT NULL,
    check_name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    value REAL,
    created_at REAL NOT NULL,
    PRIMARY KEY (repo, base_tree, check_name, fingerprint)
);
"""

# version -> the statements that bring a database from version - 1 to it.
_MIGRATIONS: dict[int, str] = {
    2: """
-- When the current validation began; a decision's event records how long it took.
ALTER TABLE submissions ADD COLUMN claimed_at REAL;
ALTER TABLE events ADD COLUMN duration REAL;
-- `status`: the submissions of a window without reading their (large) rows.
CREATE INDEX submissions_window ON submissions (created_at, state, route, source, confidence, repo);
-- `status` and `monitor`: the decisions of a window, without reading the events table.
CREATE INDEX events_decisions ON events (kind, to_state, ts, from_state, submission_id, duration);
-- `status`: when a validation recorded before `duration` existed began.
CREATE INDEX events_submission_state ON events (submission_id, to_state, id, ts);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    submission_id INTEGER REFERENCES submissions (id),
    repo TEXT,
    target TEXT,
    data TEXT NOT NULL,
    routed_at REAL,
    sinks TEXT
);
CREATE INDEX outbox_unrouted ON outbox (id) WHERE routed_at IS NULL;
CREATE TABLE deliveries (
    alert_id INTEGER NOT NULL REFERENCES outbox (id),
    sink TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    error TEXT,
    done_at REAL,
    PRIMARY KEY (alert_id, sink)
);
CREATE INDEX deliveries_pending ON deliveries (sink, next_at) WHERE state = 'pending';
CREATE INDEX deliveries_failed ON deliveries (done_at) WHERE state = 'failed';
CREATE TABLE sinks (
    name TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    open_until REAL,
    last_error TEXT,
    last_ok_at REAL,
    updated_at REAL NOT NULL
);
CREATE TABLE monitor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    level TEXT NOT NULL,
    since REAL NOT NULL,
    alerted TEXT,
    warning_at REAL,
    critical_at REAL,
    ok_at REAL,
    checked_at REAL NOT NULL,
    thresholds TEXT
);
""",
    3: """
-- Every file taken from an inbox folder, so that whoever decides its
-- submission can move it to the folder of its fate (inbox.settle).
CREATE TABLE inbox_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id INTEGER NOT NULL REFERENCES submissions (id),
    repo TEXT NOT NULL,
    path TEXT NOT NULL,
    taken_at REAL NOT NULL
);
CREATE INDEX inbox_files_submission ON inbox_files (submission_id);
""",
}


@dataclass(frozen=True)
class Submission:
    id: int
    repo: str
    target: str
    source: str
    source_detail: str | None
    title: str
    author: str | None
    note: str | None
    patch_sha256: str
    dedup_key: str
    state: str
    route: str | None
    confidence: float | None
    explanation: dict[str, Any] | None
    reason: str | None
    base_commit: str | None
    result_tree: str | None
    merged_commit: str | None
    merge_intent: str | None
    pr_url: str | None
    pr_number: int | None
    pr_state: str | None
    attempts: int
    created_at: float
    updated_at: float
    decided_at: float | None
    claimed_at: float | None = None  # when its current (or last) validation began

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Submission:
        values = dict(row)
        values["explanation"] = json.loads(values["explanation"]) if values["explanation"] else None
        return cls(**values)

    def patch_path(self) -> Path:
        return patch_file(self.patch_sha256)

    def read_patch(self) -> bytes:
        return self.patch_path().read_bytes()


_REPLACES = re.compile(r"replaces ([0-9a-f]+) with ([0-9a-f]+)")


@dataclass(frozen=True)
class Replacement:
    """A pushed commit and the commit errauto merged in its place."""
    submission_id: int
    author: str | None
    pushed: str
    merged: str


@dataclass(frozen=True)
class CheckRow:
    name: str
    attempt: int
    status: str
    exit_code: int | None
    duration: float
    score: float
    weight: float
    detail: str | None
    log_path: str | None
    base_commit: str | None


@dataclass(frozen=True)
class InboxFile:
    """A file taken from an inbox folder; `path` is where it lies now (absolute)."""

    id: int
    submission_id: int
    repo: str
    path: str


@dataclass(frozen=True)
class Alert:
    """One row of the outbox: what happened, as it was when it happened."""

    id: int
    created_at: float
    kind: str
    level: str
    submission_id: int | None
    repo: str | None
    target: str | None
    data: dict[str, Any]  # title, route, state, confidence, reason, pr_url, detail, ...

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Alert:
        return cls(row["id"], row["created_at"], row["kind"], row["level"], row["submission_id"],
                   row["repo"], row["target"], json.loads(row["data"]))


def alert_for(from_state: str | None, to_state: str, route: str | None,
              decided_route: str | None) -> str | None:
    """The alert a state change raises, if any. Pure.

    `route` is the submission's route after the change; `decided_route` the
    route its last validation decided (they differ when a route could not be
    carried out, e.g. an auto-merge held for review).
    """
    if to_state == from_state:
        return None  # e.g. pr_open again after a GitHub failure: that raised its own alert
    if to_state == "merged":
        return "auto_merged" if route == "auto_merge" else "merged"
    if to_state == "pr_open":
        return "pr_opened"
    if to_state == "awaiting_review":
        return "auto_merge_failed" if decided_route == "auto_merge" else "review_needed"
    if to_state == "rejected":
        return "rejected"
    if to_state == "failed":
        return "daemon_error"  # errauto could not decide: an internal or configuration error
    return None


def _alert_data(row: sqlite3.Row | None, detail: str | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if row is not None:
        data = {k: row[k] for k in ("title", "state", "route", "confidence", "reason", "source",
                                    "pr_url", "pr_number", "pr_state", "merged_commit")}
    if detail:
        data["detail"] = detail
    data.update(extra or {})
    return data


def _insert_alert(conn: sqlite3.Connection, kind: str, now: float, row: sqlite3.Row | None,
                  detail: str | None = None, extra: dict[str, Any] | None = None) -> int:
    """Write an alert into the outbox, inside the caller's transaction."""
    from errauto_daemon.redact import redact  # loads config: only where alerts are written

    data = redact(json.dumps(_alert_data(row, detail, extra), sort_keys=True))
    cur = conn.execute(
        "INSERT INTO outbox (created_at, kind, level, submission_id, repo, target, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (now, kind, ALERT_LEVELS[kind], row["id"] if row is not None else None,
         row["repo"] if row is not None else None, row["target"] if row is not None else None, data))
    return int(cur.lastrowid or 0)


def _decided_route(explanation: str | None) -> str | None:
    if not explanation:
        return None
    try:
        value = json.loads(explanation).get("route")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def patch_file(sha256: str) -> Path:
    return paths.patches_dir() / f"{sha256}.patch"


def store_patch_bytes(data: bytes) -> str:
    """Write `data` content-addressed (atomically, fsynced); returns its sha256."""
    digest = hashlib.sha256(data).hexdigest()
    target = patch_file(digest)
    if target.exists() and target.stat().st_size == len(data):
        return digest
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return digest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run `;`-separated statements (inside the caller's transaction, unlike executescript)."""
    code = "\n".join(line for line in script.splitlines() if not line.strip().startswith("--"))
    for statement in code.split(";"):
        if statement.strip():
            conn.execute(statement)


class Store:
    """A connection to the state database; one per thread."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.db_path()
        self._local = threading.local()
        try:
            self._ensure_schema()
        except sqlite3.DatabaseError as exc:  # cannot open, read-only, not a database
            if "locked" in str(exc) or "busy" in str(exc):
                raise  # another process held it past the busy timeout: not a setup problem
            self.close()
            raise ConfigError(f"cannot use the state database {self.path}: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot use the state database {self.path}: "
                              f"{exc.strerror or exc}") from None

    # -- connections -----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def _ensure_schema(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
            if row is None:
                _run_script(conn, _SCHEMA)
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
                version = 1
            else:
                version = int(conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
            if version < SCHEMA_VERSION:
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    _run_script(conn, _MIGRATIONS[step])
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
                return
        if version > SCHEMA_VERSION:
            raise FatalError(
                f"the state database {self.path} was written by a newer errauto "
                f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade errauto")

    # -- repos -----------------------------------------------------------------

    def add_repo(self, path: str) -> bool:
        with self.transaction() as conn:
            cur = conn.execute("INSERT OR IGNORE INTO repos (path, added_at) VALUES (?, ?)",
                               (path, time.time()))
            return cur.rowcount == 1

    def remove_repo(self, path: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM repos WHERE path = ?", (path,)).rowcount == 1

    def repos(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT path FROM repos ORDER BY path")]

    # -- submissions -------------------------------------------------------------

    def insert_submission(
        self, *, repo: str, target: str, source: str, source_detail: str | None, title: str,
        author: str | None, note: str | None, patch_sha256: str, dedup_key: str,
        state: str = "queued", reason: str | None = None,
    ) -> tuple[Submission, bool]:
        """Record a submission, or return the existing one with the same dedup key."""
        now = time.time()
        with self.transaction() as conn:
            existing = conn.execute(
                "SELECT * FROM submissions WHERE repo = ? AND target = ? AND dedup_key = ?",
                (repo, target, dedup_key)).fetchone()
            if existing is not None:
                conn.execute(
                    "INSERT INTO events (submission_id, ts, kind, detail) VALUES (?, ?, 'duplicate', ?)",
                    (existing["id"], now, f"{source}: {source_detail or ''}".strip(": ")))
                return Submission.from_row(existing), False
            decided = now if state in DECIDED else None
            cur = conn.execute(
                """INSERT INTO submissions (repo, target, source, source_detail, title, author, note,
                       patch_sha256, dedup_key, state, route, reason, created_at, updated_at, decided_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (repo, target, source, source_detail, title, author, note, patch_sha256, dedup_key,
                 state, "rejected" if state == "rejected" else None, reason, now, now, decided))
            sub_id = cur.lastrowid
            conn.execute(
                "INSERT INTO events (submission_id, ts, kind, to_state, route, detail) "
                "VALUES (?, ?, 'state', ?, ?, ?)",
                (sub_id, now, state, "rejected" if state == "rejected" else None, reason or source))
            row = conn.execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone()
            kind = alert_for(None, state, row["route"], None)
            if kind is not None:
                _insert_alert(conn, kind, now, row)
        return Submission.from_row(row), True

    def get(self, sub_id: int) -> Submission:
        row = self.conn.execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone()
        if row is None:
            raise FatalError(f"no submission {sub_id}")
        return Submission.from_row(row)

    def submissions(self, states: Sequence[str] | None = None, limit: int = 200,
             repo: str | None = None) -> list[Submission]:
        query = "SELECT * FROM submissions"
        clauses: list[str] = []
        args: list[Any] = []
        if states:
            clauses.append(f"state IN ({','.join('?' * len(states))})")
            args += list(states)
        if repo:
            clauses.append("repo = ?")
            args.append(repo)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [Submission.from_row(r) for r in self.conn.execute(query, args)]

    def claim(self, sub_id: int, from_states: Sequence[str] = ("queued",), detail: str = "") -> Submission | None:
        """Move a submission to `validating` if it is in one of `from_states`."""
        now = time.time()
        with self.transaction() as conn:
            row = conn.execute("SELECT state FROM submissions WHERE id = ?", (sub_id,)).fetchone()
            if row is None or row["state"] not in from_states:
                return None
            conn.execute(
                "UPDATE submissions SET state = 'validating', attempts = attempts + 1, "
                "updated_at = ?, decided_at = NULL, claimed_at = ? WHERE id = ?", (now, now, sub_id))
            conn.execute(
                "INSERT INTO events (submission_id, ts, kind, from_state, to_state, detail) "
                "VALUES (?, ?, 'state', ?, 'validating', ?)", (sub_id, now, row["state"], detail or None))
            fresh = conn.execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone()
        return Submission.from_row(fresh)

    def transition(self, sub_id: int, to_state: str, *, expect: Sequence[str] | None = None,
                   detail: str | None = None, **fields: Any) -> Submission:
        """Set the state (and other columns) and record the event, atomically.

        With `expect`, the change only happens if the current state is one of
        those; otherwise FatalError names the state found.
        """
        assert to_state in STATES, to_state
        allowed = {"route", "confidence", "explanation", "reason", "base_commit", "result_tree",
                   "merged_commit", "merge_intent", "pr_url", "pr_number", "pr_state"}
        assert set(fields) <= allowed, fields
        if "explanation" in fields and fields["explanation"] is not None:
            fields["explanation"] = json.dumps(fields["explanation"], sort_keys=True)
        now = time.time()
        with self.transaction() as conn:
            row = conn.execute("SELECT state, claimed_at FROM submissions WHERE id = ?", (sub_id,)).fetchone()
            if row is None:
                raise FatalError(f"no submission {sub_id}")
            if expect is not None and row["state"] not in expect:
                raise FatalError(f"submission {sub_id} is {row['state']}, not {' or '.join(expect)}")
            sets = ["state = ?", "updated_at = ?", "decided_at = ?"]
            args: list[Any] = [to_state, now, now if to_state in DECIDED else None]
            for key, value in fields.items():
                sets.append(f"{key} = ?")
                args.append(value)
            conn.execute(f"UPDATE submissions SET {', '.join(sets)} WHERE id = ?", (*args, sub_id))
            took = now - row["claimed_at"] if row["state"] == "validating" and row["claimed_at"] else None
            conn.execute(
                "INSERT INTO events (submission_id, ts, kind, from_state, to_state, route, detail, duration) "
                "VALUES (?, ?, 'state', ?, ?, ?, ?, ?)",
                (sub_id, now, row["state"], to_state, fields.get("route"), detail, took))
            fresh = conn.execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone()
            kind = alert_for(row["state"], to_state, fresh["route"], _decided_route(fresh["explanation"]))
            if kind is not None:
                _insert_alert(conn, kind, now, fresh, detail, {"from_state": row["state"]})
        return Submission.from_row(fresh)

    @contextmanager
    def hold(self, sub_id: int) -> Iterator[bool]:
        """An exclusive, process-wide hold on one submission while it is worked on.

        A flock, so it dies with its holder: a submission left `validating`
        whose hold can be taken was abandoned by a process that died. Yields
        False when another process holds it. Holders must re-read the state
        after taking the hold (the lock file is removed on release).
        """
        directory = paths.locks_dir() / "claims"
        directory.mkdir(exist_ok=True)
        path = directory / f"{sub_id}.lock"
        fd = try_lock(path)
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            path.unlink(missing_ok=True)
            os.close(fd)

    def set_fields(self, sub_id: int, **fields: Any) -> None:
        """Record facts about a submission without changing its state."""
        allowed = {"merge_intent", "pr_url", "pr_number", "pr_state", "reason"}
        assert set(fields) <= allowed, fields
        with self.transaction() as conn:
            sets = ", ".join(f"{k} = ?" for k in fields)
            conn.execute(f"UPDATE submissions SET {sets}, updated_at = ? WHERE id = ?",
                         (*fields.values(), time.time(), sub_id))

    def requeue(self, sub_id: int, detail: str, *, uncount_attempt: bool = False,
                expect: Sequence[str] = ("validating",)) -> bool:
        """Put a submission back in the queue (it was interrupted, or resubmitted).

        `uncount_attempt`: the interrupted attempt was not the patch's doing
        (a shutdown), so it does not count towards the attempt limit.
        """
        now = time.time()
        with self.transaction() as conn:
            row = conn.execute("SELECT state FROM submissions WHERE id = ?", (sub_id,)).fetchone()
            if row is None or row["state"] not in expect:
                return False
            conn.execute(
                "UPDATE submissions SET state = 'queued', updated_at = ?, decided_at = NULL, "
                "merge_intent = NULL, attempts = attempts - ? WHERE id = ?",
                (now, 1 if uncount_attempt else 0, sub_id))
            conn.execute(
                "INSERT INTO events (submission_id, ts, kind, from_state, to_state, detail) "
                "VALUES (?, ?, 'state', ?, 'queued', ?)", (sub_id, now, row["state"], detail))
        return True

    def queued_ids(self, limit: int = 100, repo: str | None = None) -> list[int]:
        """Queued submissions, oldest first (of one repository, with `repo`)."""
        if repo is None:
            return [r[0] for r in self.conn.execute(
                "SELECT id FROM submissions WHERE state = 'queued' ORDER BY id LIMIT ?", (limit,))]
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM submissions WHERE state = 'queued' AND repo = ? ORDER BY id LIMIT ?",
            (repo, limit))]

    # -- files taken from inbox folders ------------------------------------------------

    def add_inbox_file(self, sub_id: int, repo: str, path: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO inbox_files (submission_id, repo, path, taken_at) VALUES (?, ?, ?, ?)",
                         (sub_id, repo, path, time.time()))

    def inbox_files(self, sub_id: int) -> list[InboxFile]:
        return [InboxFile(r["id"], r["submission_id"], r["repo"], r["path"]) for r in self.conn.execute(
            "SELECT id, submission_id, repo, path FROM inbox_files WHERE submission_id = ? ORDER BY id",
            (sub_id,))]

    def inbox_file_moved(self, file_id: int, path: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE inbox_files SET path = ? WHERE id = ?", (path, file_id))

    # -- validation cache ------------------------------------------------------------

    def cached_validation(self, base_tree: str, dedup_key: str,
                          fingerprint: str) -> tuple[str, dict[str, Any]] | None:
        row = self.conn.execute(
            "SELECT result_tree, results FROM validations WHERE base_tree = ? AND dedup_key = ? "
            "AND fingerprint = ?", (base_tree, dedup_key, fingerprint)).fetchone()
        return (row[0], json.loads(row[1])) if row is not None else None

    def cache_validation(self, base_tree: str, dedup_key: str, fingerprint: str,
                         result_tree: str, results: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO validations (base_tree, dedup_key, fingerprint, result_tree, "
                "results, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (base_tree, dedup_key, fingerprint, result_tree, json.dumps(results), time.time()))

    def add_event(self, sub_id: int | None, kind: str, detail: str | None = None, *,
                  alert: str | None = None) -> None:
        """Record an event; with `alert` (a kind in ALERT_KINDS), also that alert."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute("INSERT INTO events (submission_id, ts, kind, detail) VALUES (?, ?, ?, ?)",
                         (sub_id, now, kind, detail))
            if alert is not None:
                row = None
                if sub_id is not None:
                    row = conn.execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone()
                _insert_alert(conn, alert, now, row, detail)

    def events(self, sub_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT ts, kind, from_state, to_state, route, detail FROM events "
            "WHERE submission_id = ? ORDER BY id", (sub_id,))]

    # -- checks ----------------------------------------------------------------

    def record_checks(self, sub_id: int, attempt: int, base_commit: str, rows: Sequence[CheckRow]) -> None:
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                """INSERT INTO checks (submission_id, attempt, name, status, exit_code, duration,
                       score, weight, detail, log_path, base_commit, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [(sub_id, attempt, r.name, r.status, r.exit_code, r.duration, r.score, r.weight,
                  r.detail, r.log_path, base_commit, now) for r in rows])

    def checks(self, sub_id: int, attempt: int | None = None) -> list[CheckRow]:
        if attempt is None:
            row = self.conn.execute("SELECT MAX(attempt) FROM checks WHERE submission_id = ?",
                                    (sub_id,)).fetchone()
            attempt = row[0]
            if attempt is None:
                return []
        return [CheckRow(r["name"], r["attempt"], r["status"], r["exit_code"], r["duration"],
                         r["score"], r["weight"], r["detail"], r["log_path"], r["base_commit"])
                for r in self.conn.execute(
                    "SELECT * FROM checks WHERE submission_id = ? AND attempt = ? ORDER BY id",
                    (sub_id, attempt))]

    # -- baselines (coverage of a base commit) -----------------------------------------

    def baseline(self, repo: str, base_tree: str, check: str, fingerprint: str) -> tuple[bool, float | None]:
        row = self.conn.execute(
            "SELECT value FROM baselines WHERE repo = ? AND base_tree = ? AND check_name = ? "
            "AND fingerprint = ?", (repo, base_tree, check, fingerprint)).fetchone()
        return (True, row[0]) if row is not None else (False, None)

    def set_baseline(self, repo: str, base_tree: str, check: str, fingerprint: str,
                     value: float | None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO baselines (repo, base_tree, check_name, fingerprint, value, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (repo, base_tree, check, fingerprint, value, time.time()))

    # -- the daemon ------------------------------------------------------------------

    def daemon_started(self, pid: int, host: str, version: str) -> None:
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO daemon (id, pid, host, version, started_at, heartbeat_at, stopped_at) "
                "VALUES (1, ?, ?, ?, ?, ?, NULL)", (pid, host, version, now, now))

    def heartbeat(self, pid: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE daemon SET heartbeat_at = ? WHERE id = 1 AND pid = ?", (time.time(), pid))

    def daemon_stopped(self, pid: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE daemon SET stopped_at = ? WHERE id = 1 AND pid = ?", (time.time(), pid))

    def daemon_row(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM daemon WHERE id = 1").fetchone()
        return dict(row) if row is not None else None

    # -- refs the daemon has turned into submissions -------------------------------

    def ref_seen(self, repo: str, ref: str) -> str | None:
        row = self.conn.execute("SELECT sha FROM refs_seen WHERE repo = ? AND ref = ?", (repo, ref)).fetchone()
        return str(row[0]) if row is not None else None

    def set_ref_seen(self, repo: str, ref: str, sha: str, sub_id: int | None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO refs_seen (repo, ref, sha, submission_id, seen_at) VALUES (?, ?, ?, ?, ?)",
                (repo, ref, sha, sub_id, time.time()))

    def unannounced_replacements(self, repo: str, within: float = 14 * 86400) -> list[Replacement]:
        """Pushed commits merged as errauto's rewrite in the last `within` seconds
        whose pusher has not been told yet (`replaced` events without an
        `announced` one). Read on every push: it starts from the repository's
        recently decided submissions, not from all events."""
        rows = self.conn.execute(
            "SELECT e.submission_id, s.author, e.detail FROM submissions s JOIN events e "
            "ON e.submission_id = s.id WHERE s.repo = ? AND s.state = 'merged' AND s.decided_at > ? "
            "AND e.kind = 'replaced' AND NOT EXISTS "
            "(SELECT 1 FROM events a WHERE a.submission_id = s.id AND a.kind = 'announced') "
            "ORDER BY e.id", (repo, time.time() - within)).fetchall()
        out = []
        for row in rows:
            found = _REPLACES.fullmatch(row["detail"] or "")
            if found:
                out.append(Replacement(int(row["submission_id"]), row["author"], found[1], found[2]))
        return out

    def mark_announced(self, sub_id: int, detail: str) -> None:
        self.add_event(sub_id, "announced", detail)

    # -- summaries -------------------------------------------------------------

    def count(self, states: Sequence[str]) -> int:
        row = self.conn.execute(
            f"SELECT COUNT(*) FROM submissions WHERE state IN ({','.join('?' * len(states))})",
            tuple(states)).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, dict[str, int]]:
        by_state = {s: 0 for s in STATES}
        for row in self.conn.execute("SELECT state, COUNT(*) FROM submissions GROUP BY state"):
            by_state[row[0]] = row[1]
        by_route: dict[str, int] = {}
        for row in self.conn.execute(
                "SELECT route, COUNT(*) FROM submissions WHERE route IS NOT NULL GROUP BY route"):
            by_route[row[0]] = row[1]
        return {"state": by_state, "route": by_route}

    # -- the outbox --------------------------------------------------------------------
    #
    # An alert is written by the change that causes it (above). The sender
    # (notify.py) then routes it once, creating one delivery per sink it goes
    # to, and delivers each delivery until it is sent, or failed for good.

    def add_alert(self, kind: str, detail: str, extra: dict[str, Any] | None = None,
                  sub_id: int | None = None) -> int:
        """Record an alert that no state change carries (daemon errors, the monitor)."""
        assert kind in ALERT_LEVELS, kind
        with self.transaction() as conn:
            row = None
            if sub_id is not None:
                row = conn.execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone()
            return _insert_alert(conn, kind, time.time(), row, detail, extra)

    def alerts(self, limit: int = 100, after: int = 0) -> list[Alert]:
        return [Alert.from_row(r) for r in self.conn.execute(
            "SELECT * FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]

    def unrouted_alerts(self, limit: int = 200) -> list[Alert]:
        return [Alert.from_row(r) for r in self.conn.execute(
            "SELECT * FROM outbox WHERE routed_at IS NULL ORDER BY id LIMIT ?", (limit,))]

    def route_alerts(self, routes: dict[int, Sequence[str]]) -> None:
        """Record where each alert goes: one pending delivery per sink (none: not sent anywhere)."""
        now = time.time()
        with self.transaction() as conn:
            for alert_id, sinks in routes.items():
                conn.executemany(
                    "INSERT OR IGNORE INTO deliveries (alert_id, sink, state, next_at) VALUES (?, ?, 'pending', ?)",
                    [(alert_id, sink, now) for sink in sinks])
                conn.execute("UPDATE outbox SET routed_at = ?, sinks = ? WHERE id = ? AND routed_at IS NULL",
                             (now, ",".join(sinks), alert_id))

    def due_deliveries(self, sink: str, now: float, limit: int) -> list[Alert]:
        return [Alert.from_row(r) for r in self.conn.execute(
            "SELECT o.* FROM deliveries d JOIN outbox o ON o.id = d.alert_id "
            "WHERE d.sink = ? AND d.state = 'pending' AND d.next_at <= ? ORDER BY d.alert_id LIMIT ?",
            (sink, now, limit))]

    def pending_sinks(self) -> dict[str, float]:
        """Each sink with pending deliveries, and when the first of them is due."""
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT sink, MIN(next_at) FROM deliveries WHERE state = 'pending' GROUP BY sink")}

    def delivered(self, sink: str, alert_ids: Sequence[int], *, failed: str | None = None) -> None:
        """The deliveries were sent (or, with `failed`, failed for good with that reason).

        `error` keeps the last error met on the way, if any."""
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, done_at = ?, "
                "error = COALESCE(?, error) WHERE alert_id = ? AND sink = ? AND state = 'pending'",
                [("failed" if failed else "sent", now, failed, i, sink) for i in alert_ids])

    def delivery_deferred(self, sink: str, alert_ids: Sequence[int], error: str, next_at: float,
                          *, count_attempt: bool = True) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE deliveries SET attempts = attempts + ?, error = ?, next_at = ? "
                "WHERE alert_id = ? AND sink = ? AND state = 'pending'",
                [(1 if count_attempt else 0, error, next_at, i, sink) for i in alert_ids])

    def deliveries(self, alert_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT sink, state, attempts, next_at, error, done_at FROM deliveries WHERE alert_id = ? "
            "ORDER BY sink", (alert_id,))]

    def sink_state(self, sink: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM sinks WHERE name = ?", (sink,)).fetchone()
        if row is None:
            return {"name": sink, "failures": 0, "next_at": 0.0, "open_until": None, "last_error": None,
                    "last_ok_at": None, "updated_at": None}
        return dict(row)

    def sink_states(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM sinks ORDER BY name")]

    def set_sink_state(self, sink: str, *, failures: int, next_at: float, open_until: float | None,
                       last_error: str | None, last_ok_at: float | None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO sinks (name, failures, next_at, open_until, last_error, last_ok_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sink, failures, next_at, open_until, last_error, last_ok_at, time.time()))

    def undelivered(self) -> dict[str, Any]:
        """Alerts not yet delivered everywhere they go, and deliveries that failed for good."""
        unrouted = self.conn.execute(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE routed_at IS NULL").fetchone()
        pending = self.conn.execute(
            "SELECT COUNT(DISTINCT d.alert_id), MIN(o.created_at) FROM deliveries d "
            "JOIN outbox o ON o.id = d.alert_id WHERE d.state = 'pending'").fetchone()
        failed = self.conn.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'failed'").fetchone()
        oldest = [t for t in (unrouted[1], pending[1]) if t is not None]
        return {"pending": int(unrouted[0]) + int(pending[0]), "oldest": min(oldest) if oldest else None,
                "failed": int(failed[0])}

    def failed_deliveries_since(self, since: float) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE state = 'failed' AND done_at >= ?", (since,)).fetchone()
        return int(row[0])

    # -- the monitor's level ---------------------------------------------------------

    def monitor_row(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM monitor WHERE id = 1").fetchone()
        return dict(row) if row is not None else None

    def record_level(self, level: str, detail: str, extra: dict[str, Any], thresholds: str,
                     *, repeat_after: float = 3600.0, now: float | None = None) -> int | None:
        """Remember the level just seen; alert when it differs from the level last alerted.

        A warning or critical alert is sent at most once per `repeat_after`
        seconds (a flapping level does not flood anyone); the level then stays
        "not yet alerted" and is alerted once that time has passed. Back to
        ok is alerted whenever a worse level was. Returns the alert's id.
        """
        now = time.time() if now is None else now
        with self.transaction() as conn:
            row = conn.execute("SELECT * FROM monitor WHERE id = 1").fetchone()
            if row is None:
                conn.execute("INSERT INTO monitor (id, level, since, alerted, checked_at, thresholds) "
                             "VALUES (1, ?, ?, 'ok', ?, ?)", (level, now, now, thresholds))
                row = conn.execute("SELECT * FROM monitor WHERE id = 1").fetchone()
            since = row["since"] if row["level"] == level else now
            conn.execute("UPDATE monitor SET level = ?, since = ?, checked_at = ?, thresholds = ? WHERE id = 1",
                         (level, since, now, thresholds))
            if not level_alerts(level, row["alerted"], row[f"{level}_at"], now, repeat_after):
                return None
            conn.execute(f"UPDATE monitor SET alerted = ?, {level}_at = ? WHERE id = 1", (level, now))
            return _insert_alert(conn, f"monitor_{level}", now, None, detail,
                                 {**extra, "previous": row["alerted"]})


def level_alerts(level: str, alerted: str | None, last_sent: float | None, now: float,
                 repeat_after: float) -> bool:
    """Whether the monitor alerts `level`, given the level it last alerted. Pure."""
    if level == (alerted or "ok"):
        return False
    if level == "ok":
        return True
    return last_sent is None or now - last_sent >= repeat_after
