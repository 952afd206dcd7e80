"""The outbox (alerts), their deliveries to each sink, and each sink's state.

An alert is written by the change that causes it, in that change's
transaction (`insert_alert`; which change raises which alert is
`errauto_daemon.alerts`). The sender (notify.py) then routes it once,
creating one delivery per sink it goes to, and delivers each delivery until
it is sent, or failed for good.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from errauto_daemon import alerts
from errauto_daemon.store.db import Backend, Transaction
from errauto_daemon.store.records import Alert

# How long a sender may hold the deliveries it took: a message's post (connect 5 s, read 10 s) with room.
CLAIM_LEASE = 30.0


def insert_alert(tx: Transaction, kind: str, now: float, submission: Mapping[str, Any] | None,
                 detail: str | None = None, extra: Mapping[str, Any] | None = None) -> int:
    """Write an alert into the outbox, inside the caller's transaction; returns its id."""
    from errauto_daemon.redact import redact  # loads config: only where alerts are written

    level = alerts.level_of(kind)
    data = redact(json.dumps(alerts.alert_data(submission, detail, extra), sort_keys=True))
    return tx.insert(
        "INSERT INTO outbox (created_at, kind, level, submission_id, repo, target, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (now, kind, level, submission["id"] if submission is not None else None,
         submission["repo"] if submission is not None else None,
         submission["target"] if submission is not None else None, data))


class Outbox:
    _db: Backend

    def add_alert(self, kind: str, detail: str, extra: dict[str, Any] | None = None,
                  sub_id: int | None = None) -> int:
        """Record an alert that no state change carries (daemon errors, the monitor)."""
        alerts.level_of(kind)  # an unknown kind fails before anything is written
        with self._db.transaction() as tx:
            row = None
            if sub_id is not None:
                row = tx.row("SELECT * FROM submissions WHERE id = ?", (sub_id,))
            return insert_alert(tx, kind, time.time(), row, detail, extra)

    def alerts(self, limit: int = 100, after: int = 0) -> list[Alert]:
        return [Alert.from_row(r) for r in self._db.read.rows(
            "SELECT * FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]

    def unrouted_alerts(self, limit: int = 200) -> list[Alert]:
        return [Alert.from_row(r) for r in self._db.read.rows(
            "SELECT * FROM outbox WHERE routed_at IS NULL ORDER BY id LIMIT ?", (limit,))]

    def route_alerts(self, routes: dict[int, Sequence[str]]) -> None:
        """Record where each alert goes: one pending delivery per sink (none: not sent anywhere)."""
        now = time.time()
        with self._db.transaction() as tx:
            for alert_id, sinks in routes.items():
                tx.insert_new("deliveries", [{"alert_id": alert_id, "sink": sink, "state": "pending", "next_at": now}
                                             for sink in sinks])
                tx.execute("UPDATE outbox SET routed_at = ?, sinks = ? WHERE id = ? AND routed_at IS NULL",
                           (now, ",".join(sinks), alert_id))

    def claim_deliveries(self, sink: str, now: float, limit: int, lease: float = CLAIM_LEASE) -> list[Alert]:
        """Take the deliveries to `sink` that are due, for `lease` seconds: no other sender (another
        daemon on a database machines share, `monitor --deliver` beside a daemon) takes them
        meanwhile. The taker marks them sent, failed or deferred (`delivered`, `delivery_deferred`);
        a taker that died leaves them due again once the lease is over."""
        with self._db.transaction() as tx:
            rows = tx.rows(
                "SELECT o.* FROM deliveries d JOIN outbox o ON o.id = d.alert_id "
                "WHERE d.sink = ? AND d.state = 'pending' AND d.next_at <= ? ORDER BY d.alert_id LIMIT ?",
                (sink, now, limit))
            tx.execute_many("UPDATE deliveries SET next_at = ? WHERE alert_id = ? AND sink = ?",
                            [(now + lease, r["id"], sink) for r in rows])
        return [Alert.from_row(r) for r in rows]

    def pending_sinks(self) -> dict[str, float]:
        """Each sink with pending deliveries, and when the first of them is due."""
        return {r[0]: r[1] for r in self._db.read.tuples(
            "SELECT sink, MIN(next_at) FROM deliveries WHERE state = 'pending' GROUP BY sink")}

    def delivered(self, sink: str, alert_ids: Sequence[int], *, failed: str | None = None) -> None:
        """The deliveries were sent (or, with `failed`, failed for good with that reason).

        `error` keeps the last error met on the way, if any."""
        now = time.time()
        with self._db.transaction() as tx:
            tx.execute_many(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, done_at = ?, "
                "error = COALESCE(?, error) WHERE alert_id = ? AND sink = ? AND state = 'pending'",
                [("failed" if failed else "sent", now, failed, i, sink) for i in alert_ids])

    def delivery_deferred(self, sink: str, alert_ids: Sequence[int], error: str, next_at: float,
                          *, count_attempt: bool = True) -> None:
        with self._db.transaction() as tx:
            tx.execute_many(
                "UPDATE deliveries SET attempts = attempts + ?, error = ?, next_at = ? "
                "WHERE alert_id = ? AND sink = ? AND state = 'pending'",
                [(1 if count_attempt else 0, error, next_at, i, sink) for i in alert_ids])

    def deliveries(self, alert_id: int) -> list[dict[str, Any]]:
        return self._db.read.rows(
            "SELECT sink, state, attempts, next_at, error, done_at FROM deliveries WHERE alert_id = ? "
            "ORDER BY sink", (alert_id,))

    def sink_state(self, sink: str) -> dict[str, Any]:
        row = self._db.read.row("SELECT * FROM sinks WHERE name = ?", (sink,))
        if row is None:
            return {"name": sink, "failures": 0, "next_at": 0.0, "open_until": None, "last_error": None,
                    "last_ok_at": None, "updated_at": None}
        return row

    def sink_states(self) -> list[dict[str, Any]]:
        return self._db.read.rows("SELECT * FROM sinks ORDER BY name")

    def set_sink_state(self, sink: str, *, failures: int, next_at: float, open_until: float | None,
                       last_error: str | None, last_ok_at: float | None) -> None:
        with self._db.transaction() as tx:
            tx.replace("sinks", {"name": sink, "failures": failures, "next_at": next_at, "open_until": open_until,
                                 "last_error": last_error, "last_ok_at": last_ok_at, "updated_at": time.time()})
