"""The database itself: the SQLite connection (WAL, busy timeout), the schema and
its migrations, transactions, and everything particular to SQLite's dialect.

The table groups (submissions.py, sources.py, cache.py, outbox.py,
monitor.py, queries.py) write portable SQL with `?` parameters against a `Database`;
what only SQLite spells its way (replacing or ignoring on conflict, a
timestamp's local date, forcing a covering index) comes from here, and rows
leave as plain dicts and tuples. Another backend is another `Database`.

The schema is versioned: a new database gets `_SCHEMA` and then every
migration in `_MIGRATIONS`; an older one gets the migrations it lacks, in
the transaction that opens it.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

from errauto_daemon import paths
from errauto_daemon.errors import ConfigError, FatalError
from errauto_daemon.locks import FileLock

SCHEMA_VERSION = 7

Params = Sequence[Any]


def placeholders(n: int) -> str:
    """`n` parameters, in the store's parameter style (`?`, which every table module writes)."""
    return ",".join("?" * n)

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
    4: """
-- A watched repository whose configuration cannot be used, and which one
-- (its digest): alerted once per configuration, shown by `queue show` and
-- `monitor` until the repository's configuration loads again.
CREATE TABLE config_problems (
    repo TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    error TEXT NOT NULL,
    since REAL NOT NULL,
    checked_at REAL NOT NULL
);
""",
    5: """
-- Per-test evidence: the outcome of each test of a base tree, per check
-- configuration (JSON: node id -> outcome), beside its coverage.
ALTER TABLE baselines ADD COLUMN tests TEXT;
-- Tests that failed and then passed when run again, for `status`.
CREATE TABLE flaky_tests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    test TEXT NOT NULL,
    submission_id INTEGER REFERENCES submissions (id),
    runs INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX flaky_tests_ts ON flaky_tests (ts);
""",
    6: """
-- Every daemon using this database, one row per machine and state directory (a
-- restart replaces its row): `daemon status`, `status` and `monitor` see every
-- worker of a database several machines share, and which one went missing.
CREATE TABLE workers (
    host TEXT NOT NULL,
    home TEXT NOT NULL,
    pid INTEGER NOT NULL,
    version TEXT NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    stopped_at REAL,
    slots INTEGER NOT NULL,
    busy INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (host, home)
);
""",
    7: """
-- Repositories by their git remote, for machines sharing one database: each
-- machine registers its own clone (host and state directory name whose it is;
-- '' for registrations made before, which are every machine's), and the
-- clone's push remote names the repository (`remote`: NULL without one). A
-- submission keeps that name, so any machine with a clone of the same remote
-- can validate it, and a patch sent on two machines is one submission.
CREATE TABLE repos_by_machine (
    host TEXT NOT NULL DEFAULT '',
    home TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL,
    remote TEXT,
    added_at REAL NOT NULL,
    PRIMARY KEY (host, home, path)
);
INSERT INTO repos_by_machine (path, added_at) SELECT path, added_at FROM repos;
DROP TABLE repos;
ALTER TABLE repos_by_machine RENAME TO repos;
CREATE INDEX repos_remote ON repos (remote);
ALTER TABLE submissions ADD COLUMN remote TEXT;
-- The machine (host:state directory) that recorded it: only there is its clone's path its own.
ALTER TABLE submissions ADD COLUMN recorded_by TEXT;
-- The machine that took an inbox file: only it can move the file.
ALTER TABLE inbox_files ADD COLUMN machine TEXT;
CREATE INDEX submissions_remote ON submissions (remote, target, dedup_key);
""",
}


class Reader:
    """Queries on one connection; rows come back as dicts (by name) or tuples (by position)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute(sql, params)]

    def row(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        found = self._conn.execute(sql, params).fetchone()
        return dict(found) if found is not None else None

    def tuples(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(sql, params)]

    def first(self, sql: str, params: Params = ()) -> tuple[Any, ...]:
        """The first row of a query that always returns one (an aggregate)."""
        return tuple(self._conn.execute(sql, params).fetchone())


class Transaction(Reader):
    """Writes inside one open transaction."""

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns how many rows it changed."""
        return self._conn.execute(sql, params).rowcount

    def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT; returns the new row's id."""
        return int(self._conn.execute(sql, params).lastrowid or 0)

    def execute_many(self, sql: str, params: Iterable[Params]) -> None:
        self._conn.executemany(sql, params)

    def replace(self, table: str, row: Mapping[str, Any]) -> None:
        """Insert `row`, replacing the row with the same key."""
        self._conn.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(row)}) VALUES ({placeholders(len(row))})",
                           tuple(row.values()))

    def insert_new(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert each of `rows` (same columns) whose key is not there yet; returns how many were."""
        if not rows:
            return 0
        columns = list(rows[0])
        before = self._conn.total_changes
        self._conn.executemany(
            f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({placeholders(len(columns))})",
            [tuple(r[c] for c in columns) for r in rows])
        return self._conn.total_changes - before

    def script(self, script: str) -> None:
        """Run `;`-separated statements (inside this transaction, unlike executescript)."""
        code = "\n".join(line for line in script.splitlines() if not line.strip().startswith("--"))
        for statement in code.split(";"):
            if statement.strip():
                self._conn.execute(statement)


class Backend(Protocol):
    """What the table modules use of a database, SQLite's (`Database`) or a server's (postgres.py)."""

    @property
    def path(self) -> Path | None:
        """The SQLite file; None for a server."""

    @property
    def shared(self) -> bool:
        """Whether other machines may use it too (a server), so nothing may live only in files."""

    @property
    def read(self) -> Reader: ...

    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def hold(self, sub_id: int) -> AbstractContextManager[bool]: ...

    def check_hold(self, tx: Transaction, sub_id: int) -> None: ...

    def serial(self, name: str) -> AbstractContextManager[None]: ...

    def local_date(self, column: str) -> str: ...

    def using_index(self, index: str) -> str: ...

    def like(self) -> str: ...

    def close(self) -> None: ...


class PerThread:
    """A database reached through one connection per thread (`_local.conn`), whichever its kind."""

    _local: threading.local

    def close(self) -> None:
        """Close this thread's connection; the next statement opens another."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class Database(PerThread):
    """The state database: one connection per thread, WAL, a 30 s busy timeout."""

    shared = False

    def __init__(self, path: Path) -> None:
        self.path = path
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
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @property
    def read(self) -> Reader:
        """Reads outside a transaction (each statement sees one snapshot)."""
        return Reader(self.conn)

    # SQLite's spellings of what the queries need and SQL does not say one way.

    @staticmethod
    def local_date(column: str) -> str:
        """A unix timestamp column as its date (YYYY-MM-DD) in local time."""
        return f"date({column}, 'unixepoch', 'localtime')"

    @staticmethod
    def using_index(index: str) -> str:
        """Force a covering index, whatever the planner's statistics say."""
        return f"INDEXED BY {index}"

    @staticmethod
    def like() -> str:
        """The operator of a LIKE that ignores ASCII case (SQLite's own LIKE does)."""
        return "LIKE"

    def check_hold(self, tx: Transaction, sub_id: int) -> None:
        """A flock is lost only with its process: nothing to check."""

    def serial(self, name: str) -> AbstractContextManager[None]:
        """One machine's file: what must be serialised is, by the locks in its state directory."""
        return nullcontext()

    @contextmanager
    def hold(self, sub_id: int) -> Iterator[bool]:
        """An exclusive hold on one submission while a process works on it (`Store.hold`): a flock,
        so it dies with its holder. Yields False when another process holds it."""
        directory = paths.locks_dir() / "claims"
        directory.mkdir(exist_ok=True)
        path = directory / f"{sub_id}.lock"
        lock = FileLock(path)
        if not lock.acquire():
            yield False
            return
        try:
            yield True
        finally:
            path.unlink(missing_ok=True)
            lock.release()

    def __str__(self) -> str:
        return str(self.path)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction, taken at once (BEGIN IMMEDIATE): committed, or rolled back on any error."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield Transaction(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def _ensure_schema(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # SQLite makes the -wal and -shm files with the database's own mode.
        for path in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))):
            if path == self.path or path.exists():
                paths.private_file(path)
        with self.transaction() as tx:
            version = migrate(tx)
        self.found_version = version
        if version > SCHEMA_VERSION:
            raise FatalError(
                f"the state database {self.path} was written by a newer errauto "
                f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade errauto")


class ReadOnlyDatabase(Database):
    """The state database opened read-only (`mode=ro`): for readers beside the daemon, such as `errauto web`.

    It never creates, migrates or writes the file, and its statements run
    outside any transaction, so each read holds a snapshot only for itself
    and never keeps a writer waiting.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        if not path.is_file():
            raise ConfigError(f"no state database at {path}: nothing has been submitted yet")
        try:
            version = int(self.read.first("SELECT value FROM meta WHERE key = 'schema_version'")[0])
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ConfigError(f"cannot read the state database {path}: {exc}") from None
        if version != SCHEMA_VERSION:
            self.close()
            raise ConfigError(f"the state database {path} has schema {version}, this errauto reads "
                              f"{SCHEMA_VERSION}: run any other errauto command once to bring it up to date")

    def _connect(self) -> sqlite3.Connection:
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA query_only = ON")
        return conn


def migrate(tx: Transaction) -> int:
    """Create the schema, or bring it up to `SCHEMA_VERSION`; returns the version found."""
    if tx.row("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'") is None:
        tx.script(_SCHEMA)
        tx.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
        version = 1
    else:
        version = int(tx.first("SELECT value FROM meta WHERE key = 'schema_version'")[0])
    if version < SCHEMA_VERSION:
        for step in range(version + 1, SCHEMA_VERSION + 1):
            tx.script(_MIGRATIONS[step])
        tx.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
    return version
