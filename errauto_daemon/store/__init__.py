"""errauto's durable state: one database, plus patch bytes on disk.

One module per table group, each the only one to touch its tables:

  db.py           the connection (SQLite, WAL, busy timeout), schema and migrations
                  (`meta` holds the version), transactions, SQLite's own spellings
  submissions.py  submissions, their events and checks; claims and holds
  sources.py      registered repositories and their configuration problems, inbox files,
                  refs seen, replaced commits
  cache.py        validations and coverage baselines
  outbox.py       the outbox (alerts), deliveries, sinks
  monitor.py      the daemon's heartbeat, the monitor's level
  queries.py      the read-only queries behind `status` and `monitor`
  browse.py       the read-only queries behind `errauto web` (queue pages, filters)
  trends.py       the read-only queries behind its trends page (what `status` counts, per day)
  records.py      the records the store hands out; patches.py the patch files

A submission's life:

    queued -> validating -> merged | pr_open | awaiting_review | rejected | failed
    awaiting_review -> merged | pr_open | rejected       (a person decides)

`Store` is the SQLite store; `StoreAPI` (api.py) is what callers may use of it.
Which change raises which alert is `errauto_daemon.alerts` (pure); the store
writes the alert it names in the change's own transaction.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from errauto_daemon.alerts import ALERT_KINDS, ALERT_LEVELS, alert_for, level_alerts
from errauto_daemon.store.api import StoreAPI
from errauto_daemon.store.browse import Browse
from errauto_daemon.store.cache import Cache
from errauto_daemon.store.db import _MIGRATIONS as _MIGRATIONS
from errauto_daemon.store.db import _SCHEMA as _SCHEMA
from errauto_daemon.store.db import SCHEMA_VERSION, Backend, Database, ReadOnlyDatabase
from errauto_daemon.store.jobqueue import JobQueue
from errauto_daemon.store.monitor import Monitor
from errauto_daemon.store.outbox import Outbox
from errauto_daemon.store.patches import Patches, patch_file, store_patch_bytes
from errauto_daemon.store.queries import Queries
from errauto_daemon.store.records import (
    DECIDED,
    FINAL,
    STATES,
    Alert,
    Backlog,
    CheckRow,
    ConfigProblem,
    DayCount,
    FilterChoices,
    InboxFile,
    KindDay,
    QueueFilter,
    QueuePage,
    Replacement,
    StateDay,
    Submission,
    WindowCount,
    Worker,
)
from errauto_daemon.store.sources import Sources
from errauto_daemon.store.submissions import CANCEL_REQUESTED, REJECTED_NOW, Submissions
from errauto_daemon.store.trends import Trends
from errauto_daemon.store.where import Where, configured, is_postgres

__all__ = [
    "ALERT_KINDS", "ALERT_LEVELS", "CANCEL_REQUESTED", "DECIDED", "FINAL", "REJECTED_NOW", "SCHEMA_VERSION",
    "STATES", "Alert", "Backlog", "CheckRow", "ConfigProblem", "DayCount", "FilterChoices",
    "InboxFile", "KindDay", "QueueFilter", "QueuePage", "ReadOnlyStore", "Replacement", "StateDay", "Store",
    "StoreAPI",
    "Submission", "WindowCount", "Worker", "alert_for", "level_alerts", "patch_file", "store_patch_bytes",
]


class _ByHand:
    _db: Backend

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement (`?` parameters) in a transaction of its own; its rows, if it returns any.
        For tests and tools that shape a database by hand, on either backend."""
        with self._db.transaction() as tx:
            if statement.lstrip().split(None, 1)[0].upper() in ("SELECT", "WITH"):
                return tx.tuples(statement, params)
            tx.execute(statement, params)
            return []


class Store(Submissions, Sources, Cache, Outbox, Monitor, Queries, Browse, Trends, Patches, JobQueue, _ByHand):
    """The state database, and a connection per thread, opened on first use.

    `where` is a SQLite file or a postgresql:// URL (store/where.py); by
    default, what the user's configuration names. Opening it creates or
    migrates the schema; a database that cannot be used is a ConfigError
    (exit 5).
    """

    def __init__(self, where: Where | None = None, *, migrate: bool = False) -> None:
        self.where: Where = configured() if where is None else where
        # SQLite's file is created and upgraded by whoever opens it; a server's schema only by
        # `errauto db migrate` (migrate=True).
        self._db = _postgres().PostgresDatabase(str(self.where), migrate=migrate) if is_postgres(self.where) \
            else Database(Path(self.where))
        self.path = self._db.path
        self.schema_was: int = self._db.found_version  # the schema it had when opened

    @property
    def shared(self) -> bool:
        """Whether other machines may use this database too (a server): validations are jobs then."""
        return self._db.shared

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's SQLite connection: for tests and tools that shape a SQLite database by hand."""
        if not isinstance(self._db, Database):
            raise TypeError("not a SQLite store")
        return self._db.conn

    def __str__(self) -> str:
        return str(self._db)

    def close(self) -> None:
        self._db.close()


class ReadOnlyStore(Submissions, Sources, Cache, Outbox, Monitor, Queries, Browse, Trends, Patches, JobQueue, _ByHand):
    """The state database opened read-only, for pages that only look (`errauto web`).

    Its own connections (one per thread), never a writer's: reading cannot
    slow the daemon's transactions. Only its reading methods may be called;
    a write fails as the database refuses it.
    """

    def __init__(self, where: Where | None = None) -> None:
        self.where: Where = configured() if where is None else where
        self._db = _postgres().ReadOnlyPostgresDatabase(str(self.where)) if is_postgres(self.where) \
            else ReadOnlyDatabase(Path(self.where))
        self.path = self._db.path

    def __str__(self) -> str:
        return str(self._db)

    def close(self) -> None:
        self._db.close()


def _postgres() -> Any:
    """The PostgreSQL backend, imported only by those who use it (psycopg loads libpq)."""
    from errauto_daemon.store import postgres
    return postgres


def _conforms(store: Store) -> StoreAPI:
    return store  # mypy checks here that Store has everything StoreAPI promises


def _reads_as(store: ReadOnlyStore) -> StoreAPI:
    return store  # so `metrics` and `health` read a ReadOnlyStore as they read a Store
