"""What machines sharing one state coordinate through: the job queue (`jobs`, Procrastinate's
tables in the same PostgreSQL schema: whether they are there, which queued submissions have no
job, the connection through which a job is added) and named locks across machines (`serial`)."""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from errauto_daemon.domain import State
from errauto_daemon.store.db import Backend


class JobQueue:
    _db: Backend

    def has_job_tables(self) -> bool:
        """Whether the state's schema has the job queue's tables (`errauto db migrate` creates them)."""
        if not self._db.shared:
            return False
        row = self._db.read.row("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present")
        return bool(row and row["present"])

    def jobless_queued(self, task: str, limit: int = 500) -> list[int]:
        """Queued submissions with no job of `task` waiting or running, oldest first."""
        return [int(r[0]) for r in self._db.read.tuples(
            "SELECT s.id FROM submissions s WHERE s.state = ? AND NOT EXISTS ("
            " SELECT 1 FROM procrastinate_jobs j WHERE j.task_name = ? AND j.status IN ('todo', 'doing')"
            " AND (j.args ->> 'sub_id')::bigint = s.id) ORDER BY s.id LIMIT ?", (State.QUEUED, task, limit))]

    def server_connection(self) -> Any:
        """This thread's connection to the server (psycopg), through which the job queue's library
        adds a job (`jobs.enqueue`): no pool or connection of its own in every process that records."""
        if not self._db.shared:
            raise TypeError("not a server store")
        server: Any = self._db
        return server.conn

    def serial(self, name: str) -> AbstractContextManager[None]:
        """Hold the lock `name` across every machine of this database, waiting for it (re-entrant
        within a thread; it dies with its holder). On a SQLite file, nothing: one machine's
        file locks serialise it already."""
        return self._db.serial(name)
