"""errauto's durable state: one SQLite file in WAL mode, plus patch bytes on disk.

Tables:
  submissions  one row per distinct patch per target; its state and decision
  checks       every check run, per submission and attempt
  events       every state transition, timestamped; metrics come from here
  repos        repositories registered with `errauto init` / `watch add`
  meta         schema version

A submission's life:

    queued -> validating -> merged | pr_open | awaiting_review | rejected | failed
    awaiting_review -> merged | pr_open | rejected       (a person decides)

Every write happens in a transaction; state changes check the state they
expect to leave (compare-and-set), so two processes can never both claim or
decide one submission.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
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
from errauto_daemon.errors import FatalError

SCHEMA_VERSION = 1

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

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Submission:
        values = dict(row)
        values["explanation"] = json.loads(values["explanation"]) if values["explanation"] else None
        return cls(**values)

    def patch_path(self) -> Path:
        return patch_file(self.patch_sha256)

    def read_patch(self) -> bytes:
        return self.patch_path().read_bytes()


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


class Store:
    """A connection to the state database; one per thread."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.db_path()
        self._local = threading.local()
        self._ensure_schema()

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
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
                return
            version = int(conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
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
                "updated_at = ?, decided_at = NULL WHERE id = ?", (now, sub_id))
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
            row = conn.execute("SELECT state FROM submissions WHERE id = ?", (sub_id,)).fetchone()
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
            conn.execute(
                "INSERT INTO events (submission_id, ts, kind, from_state, to_state, route, detail) "
                "VALUES (?, ?, 'state', ?, ?, ?, ?)",
                (sub_id, now, row["state"], to_state, fields.get("route"), detail))
            fresh = conn.execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone()
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
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    yield False
                    return
                raise
            try:
                yield True
            finally:
                path.unlink(missing_ok=True)
        finally:
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

    def queued_ids(self, limit: int = 100) -> list[int]:
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM submissions WHERE state = 'queued' ORDER BY id LIMIT ?", (limit,))]

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

    def add_event(self, sub_id: int | None, kind: str, detail: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO events (submission_id, ts, kind, detail) VALUES (?, ?, ?, ?)",
                         (sub_id, time.time(), kind, detail))

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
