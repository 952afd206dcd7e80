"""The daemon's row (pid, heartbeat) and the level `errauto monitor` last saw and alerted."""
from __future__ import annotations

import time
from typing import Any

from errauto_daemon.alerts import level_alerts
from errauto_daemon.store.db import Backend
from errauto_daemon.store.outbox import insert_alert
from errauto_daemon.store.records import Worker


class Monitor:
    _db: Backend

    # -- the daemon ------------------------------------------------------------------

    def daemon_started(self, pid: int, host: str, version: str) -> None:
        now = time.time()
        with self._db.transaction() as tx:
            tx.replace("daemon", {"id": 1, "pid": pid, "host": host, "version": version, "started_at": now,
                                  "heartbeat_at": now, "stopped_at": None})

    def heartbeat(self, pid: int, *, host: str, home: str, busy: int) -> None:
        """The daemon is alive, and as a worker (`worker_started`) runs `busy` validations: both rows
        in one transaction, every few seconds."""
        now = time.time()
        with self._db.transaction() as tx:
            tx.execute("UPDATE daemon SET heartbeat_at = ? WHERE id = 1 AND pid = ?", (now, pid))
            tx.execute("UPDATE workers SET heartbeat_at = ?, busy = ? WHERE host = ? AND home = ? AND pid = ?",
                       (now, busy, host, home, pid))

    def daemon_stopped(self, pid: int) -> None:
        with self._db.transaction() as tx:
            tx.execute("UPDATE daemon SET stopped_at = ? WHERE id = 1 AND pid = ?", (time.time(), pid))

    def daemon_row(self) -> dict[str, Any] | None:
        return self._db.read.row("SELECT * FROM daemon WHERE id = 1")

    # -- every daemon of the database (workers) --------------------------------------

    def worker_started(self, host: str, home: str, pid: int, version: str, slots: int) -> None:
        """A daemon began on `host` with state directory `home`: its row, replacing an earlier one's."""
        now = time.time()
        with self._db.transaction() as tx:
            tx.replace("workers", {"host": host, "home": home, "pid": pid, "version": version, "started_at": now,
                                   "heartbeat_at": now, "stopped_at": None, "slots": slots, "busy": 0})

    def worker_stopped(self, host: str, home: str, pid: int) -> None:
        with self._db.transaction() as tx:
            tx.execute("UPDATE workers SET stopped_at = ?, busy = 0 WHERE host = ? AND home = ? AND pid = ?",
                       (time.time(), host, home, pid))

    def workers(self) -> list[Worker]:
        return [Worker(**r) for r in self._db.read.rows("SELECT * FROM workers ORDER BY host, home")]

    def forget_worker(self, host: str, home: str | None = None) -> int:
        """Remove a machine's rows (all of them, or that state directory's): a machine taken out of
        service is no longer missing. Returns how many rows went."""
        with self._db.transaction() as tx:
            if home is None:
                return tx.execute("DELETE FROM workers WHERE host = ?", (host,))
            return tx.execute("DELETE FROM workers WHERE host = ? AND home = ?", (host, home))

    # -- the monitor's level ---------------------------------------------------------

    def monitor_row(self) -> dict[str, Any] | None:
        return self._db.read.row("SELECT * FROM monitor WHERE id = 1")

    def record_level(self, level: str, detail: str, extra: dict[str, Any], thresholds: str,
                     *, repeat_after: float = 3600.0, now: float | None = None) -> int | None:
        """Remember the level just seen; alert when it differs from the level last alerted.

        A warning or critical alert is sent at most once per `repeat_after`
        seconds (a flapping level does not flood anyone); the level then stays
        "not yet alerted" and is alerted once that time has passed. Back to
        ok is alerted whenever a worse level was (`alerts.level_alerts`).
        Returns the alert's id.
        """
        now = time.time() if now is None else now
        if level not in ("ok", "warning", "critical"):
            raise ValueError(f"unknown monitor level {level!r}")
        with self._db.transaction() as tx:
            row = tx.row("SELECT * FROM monitor WHERE id = 1")
            if row is None:
                tx.execute("INSERT INTO monitor (id, level, since, alerted, checked_at, thresholds) "
                           "VALUES (1, ?, ?, 'ok', ?, ?)", (level, now, now, thresholds))
                row = {"level": level, "since": now, "alerted": "ok", f"{level}_at": None}
            since = row["since"] if row["level"] == level else now
            tx.execute("UPDATE monitor SET level = ?, since = ?, checked_at = ?, thresholds = ? WHERE id = 1",
                       (level, since, now, thresholds))
            if not level_alerts(level, row["alerted"], row[f"{level}_at"], now, repeat_after):
                return None
            tx.execute(f"UPDATE monitor SET alerted = ?, {level}_at = ? WHERE id = 1", (level, now))
            return insert_alert(tx, f"monitor_{level}", now, None, detail,
                                {**extra, "previous": row["alerted"]})
