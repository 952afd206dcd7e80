"""The read-only queries behind the trends page of `errauto web`: what `status` counts, per day.

A decision is what queries.py calls one (the end of a validation, or a
rejection at intake). Decisions are counted by the state they ended in,
which names their route (carry_out pairs them: merged by auto-merge, a pull
request open, awaiting review; or rejected, failed): grouping on the state
reads only the covering index `events_decisions`, where the event's route
column would read every event row (three times slower, bench/web_speed.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter

from errauto_daemon.domain import State
from errauto_daemon.store.db import Backend, placeholders
from errauto_daemon.store.queries import _DECISIONS, _TOOK, _VALIDATING
from errauto_daemon.store.records import DECIDED, KindDay, StateDay


class Trends:
    _db: Backend

    def decisions_by_state(self, since: float) -> list[StateDay]:
        """Decisions made since `since`, per local day and the state they ended in (days without any left out)."""
        day = self._db.local_date("e.ts")
        return [StateDay(date, state, int(n)) for date, state, n in self._db.read.tuples(
            f"SELECT {day} AS day, e.to_state, COUNT(*) {_DECISIONS} GROUP BY day, e.to_state", (*DECIDED, since))]

    def validation_durations_by_day(self, since: float) -> dict[str, list[float]]:
        """How long each validation decided since `since` took, by the local day it was decided on, ascending."""
        day = self._db.local_date("e.ts")
        rows = self._db.read.tuples(
            f"SELECT day, took FROM (SELECT {day} AS day, {_TOOK} AS took {_DECISIONS} "
            f"AND e.from_state = {_VALIDATING}) AS d WHERE took IS NOT NULL ORDER BY day, took", (*DECIDED, since))
        return {date: [took for _, took in group] for date, group in groupby(rows, key=itemgetter(0))}

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
