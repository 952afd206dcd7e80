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

from errauto_daemon import paths
from errauto_daemon.alerts import ALERT_KINDS, ALERT_LEVELS, alert_for, level_alerts
from errauto_daemon.store.api import StoreAPI
from errauto_daemon.store.browse import Browse
from errauto_daemon.store.cache import Cache
from errauto_daemon.store.db import _MIGRATIONS as _MIGRATIONS
from errauto_daemon.store.db import _SCHEMA as _SCHEMA
from errauto_daemon.store.db import SCHEMA_VERSION, Database, ReadOnlyDatabase
from errauto_daemon.store.monitor import Monitor
from errauto_daemon.store.outbox import Outbox
from errauto_daemon.store.patches import patch_file, store_patch_bytes
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
)
from errauto_daemon.store.sources import Sources
from errauto_daemon.store.submissions import CANCEL_REQUESTED, REJECTED_NOW, Submissions
from errauto_daemon.store.trends import Trends

__all__ = [
    "ALERT_KINDS", "ALERT_LEVELS", "CANCEL_REQUESTED", "DECIDED", "FINAL", "REJECTED_NOW", "SCHEMA_VERSION",
    "STATES", "Alert", "Backlog", "CheckRow", "ConfigProblem", "DayCount", "FilterChoices",
    "InboxFile", "KindDay", "QueueFilter", "QueuePage", "ReadOnlyStore", "Replacement", "StateDay", "Store",
    "StoreAPI",
    "Submission", "WindowCount", "alert_for", "level_alerts", "patch_file", "store_patch_bytes",
]


class Store(Submissions, Sources, Cache, Outbox, Monitor, Queries, Browse, Trends):
    """The state database in SQLite; a connection per thread, opened on first use.

    Opening it creates or migrates the schema; a file that cannot be used is a
    ConfigError (exit 5).
    """

    def __init__(self, path: Path | None = None) -> None:
        self._db = Database(path or paths.db_path())
        self.path = self._db.path

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's SQLite connection: for tests and tools that shape a database by hand."""
        return self._db.conn

    def close(self) -> None:
        self._db.close()


class ReadOnlyStore(Submissions, Sources, Cache, Outbox, Monitor, Queries, Browse, Trends):
    """The state database opened read-only, for pages that only look (`errauto web`).

    Its own connections (one per thread), never a writer's: reading cannot
    slow the daemon's transactions. Only its reading methods may be called;
    a write fails as SQLite refuses it.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._db = ReadOnlyDatabase(path or paths.db_path())
        self.path = self._db.path

    def close(self) -> None:
        self._db.close()


def _conforms(store: Store) -> StoreAPI:
    return store  # mypy checks here that Store has everything StoreAPI promises


def _reads_as(store: ReadOnlyStore) -> StoreAPI:
    return store  # so `metrics` and `health` read a ReadOnlyStore as they read a Store
