"""The read-only queries behind the trends page of `errauto web`: what `status` counts, per day.

A decision is what queries.py calls one (the end of a validation, or a
rejection at intake); each is counted under the route its event recorded,
or under its state when it has none (a validation that failed).
"""
from __future__ import annotations

from collections.abc import Sequence

from errauto_daemon.domain import State
from errauto_daemon.store.db import Database, placeholders
from errauto_daemon.store.queries import _DECISIONS, _VALIDATING
from errauto_daemon.store.records import DECIDED, DayDuration, KindDay, RouteDay


class Trends:
    _db: Database

    def decisions_by_route(self, since: float) -> list[RouteDay]:
        """Decisions made since `since`, per local day and route (days without any left out)."""
        day = self._db.local_date("e.ts")
        return [RouteDay(date, route, int(n)) for date, route, n in self._db.read.tuples(
            f"SELECT {day} AS day, COALESCE(e.route, e.to_state) AS way, COUNT(*) {_DECISIONS} "
            "GROUP BY day, way", (*DECIDED, since))]

    def validation_durations_by_day(self, since: float) -> list[DayDuration]:
        """How long each validation decided since `since` took, with the local day it was decided on."""
        day = self._db.local_date("e.ts")
        return [DayDuration(date, took) for date, took in self._db.read.tuples(
            f"SELECT day, took FROM (SELECT {day} AS day, COALESCE(e.duration, e.ts - (SELECT v.ts FROM events v "
            f"WHERE v.submission_id = e.submission_id AND v.to_state = {_VALIDATING} AND v.id < e.id "
            f"ORDER BY v.id DESC LIMIT 1)) AS took {_DECISIONS} AND e.from_state = {_VALIDATING}) AS d "
            "WHERE took IS NOT NULL", (*DECIDED, since))]

    def waiting_since(self, states: Sequence[State]) -> list[float]:
        """When each submission now in `states` was created, oldest first."""
        return [r[0] for r in self._db.read.tuples(
            f"SELECT created_at FROM submissions WHERE state IN ({placeholders(len(states))}) "
            "ORDER BY created_at", tuple(states))]

    def alerts_by_kind(self, since: float) -> list[KindDay]:
        """Alerts raised since `since`, per local day and kind."""
        day = self._db.local_date("created_at")
        return [KindDay(date, kind, int(n)) for date, kind, n in self._db.read.tuples(
            f"SELECT {day} AS day, kind, COUNT(*) FROM outbox WHERE created_at >= ? GROUP BY day, kind",
            (since,))]
