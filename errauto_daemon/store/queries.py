"""The read-only queries behind `errauto status` (metrics.py) and `errauto monitor` (health.py).

They read covering indexes and return only what is shown, so a window of
100,000 events takes tens of milliseconds (bench/status_speed.py).
A decision, here, is a state event into a decided state made by errauto: the
end of a validation, or a rejection at intake.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from errauto_daemon.domain import State
from errauto_daemon.store.db import Backend, placeholders
from errauto_daemon.store.records import DECIDED, STATES, Backlog, DayCount, WindowCount

# State words are written into the SQL text (they are ours, not input) so the
# planner sees constants, as it would in hand-written SQL.
_VALIDATING, _MERGED, _FAILED = f"'{State.VALIDATING}'", f"'{State.MERGED}'", f"'{State.FAILED}'"
_DECISIONS = (f"FROM events e WHERE e.kind = 'state' AND e.to_state IN ({placeholders(len(DECIDED))}) "
              f"AND e.ts >= ? AND (e.from_state = {_VALIDATING} OR e.from_state IS NULL)")
# How long the validation a decision `e` ended took: recorded on its event; for events older than
# that column, from the claim's event before it. Select it `{_DECISIONS} AND e.from_state = ...`.
_TOOK = ("COALESCE(e.duration, e.ts - (SELECT v.ts FROM events v WHERE v.submission_id = e.submission_id "
         f"AND v.to_state = {_VALIDATING} AND v.id < e.id ORDER BY v.id DESC LIMIT 1))")


class Queries:
    _db: Backend

    def count(self, states: Sequence[State]) -> int:
        return int(self._db.read.first(
            f"SELECT COUNT(*) FROM submissions WHERE state IN ({placeholders(len(states))})", tuple(states))[0])

    def counts(self) -> dict[str, dict[str, int]]:
        by_state = {s: 0 for s in STATES}
        for state, n in self._db.read.tuples("SELECT state, COUNT(*) FROM submissions GROUP BY state"):
            by_state[state] = n
        by_route = dict(self._db.read.tuples(
            "SELECT route, COUNT(*) FROM submissions WHERE route IS NOT NULL GROUP BY route"))
        return {"state": by_state, "route": by_route}

    def backlog(self, states: Sequence[State]) -> Backlog:
        """How many submissions are in `states` now, and when the oldest of them was created."""
        n, oldest = self._db.read.first(
            f"SELECT COUNT(*), MIN(created_at) FROM submissions WHERE state IN ({placeholders(len(states))})",
            tuple(states))
        return Backlog(int(n), oldest)

    def window_counts(self, since: float) -> list[WindowCount]:
        """Submissions created since `since`, counted by state, route, source and repository."""
        # The covering index, whatever the planner's statistics say (with them
        # it prefers (state, created_at) and reads every row).
        window = self._db.using_index("submissions_window")
        return [WindowCount(*r) for r in self._db.read.tuples(
            f"SELECT state, route, source, repo, COUNT(*) FROM submissions {window} "
            "WHERE created_at >= ? GROUP BY state, route, source, repo", (since,))]

    def confidences(self, since: float) -> list[float]:
        """The confidence of each scored submission created since `since`, ascending."""
        window = self._db.using_index("submissions_window")
        return [r[0] for r in self._db.read.tuples(
            f"SELECT confidence FROM submissions {window} "
            "WHERE created_at >= ? AND confidence IS NOT NULL ORDER BY confidence", (since,))]

    def decisions_per_day(self, since: float) -> list[DayCount]:
        """Decisions made since `since`, per local day (days without any left out)."""
        day = self._db.local_date("e.ts")
        return [DayCount(date, int(n), int(merged)) for date, n, merged in self._db.read.tuples(
            f"SELECT {day} AS day, COUNT(*), SUM(CASE WHEN e.to_state = {_MERGED} THEN 1 ELSE 0 END) "
            f"{_DECISIONS} GROUP BY day", (*DECIDED, since))]

    def validation_durations(self, since: float) -> list[float]:
        """How long each validation decided since `since` took, ascending.

        Recorded on its decision's event; for events older than that column,
        from the claim's event before it.
        """
        return [r[0] for r in self._db.read.tuples(
            f"SELECT took FROM (SELECT {_TOOK} AS took {_DECISIONS} AND e.from_state = {_VALIDATING}) AS d "
            "WHERE took IS NOT NULL ORDER BY took", (*DECIDED, since))]

    def failure_counts(self, since: float) -> tuple[int, int]:
        """Decisions made since `since`, and how many of them failed."""
        n, failed = self._db.read.first(
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN to_state = {_FAILED} THEN 1 ELSE 0 END), 0) FROM events "
            f"WHERE ts >= ? AND kind = 'state' AND (from_state = {_VALIDATING} OR from_state IS NULL) "
            f"AND to_state IN ({placeholders(len(DECIDED))})", (since, *DECIDED))
        return int(n), int(failed)

    def undelivered(self) -> dict[str, Any]:
        """Alerts not yet delivered everywhere they go, and deliveries that failed for good."""
        read = self._db.read
        unrouted = read.first("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE routed_at IS NULL")
        pending = read.first("SELECT COUNT(DISTINCT d.alert_id), MIN(o.created_at) FROM deliveries d "
                             "JOIN outbox o ON o.id = d.alert_id WHERE d.state = 'pending'")
        failed = read.first("SELECT COUNT(*) FROM deliveries WHERE state = 'failed'")
        oldest = [t for t in (unrouted[1], pending[1]) if t is not None]
        return {"pending": int(unrouted[0]) + int(pending[0]), "oldest": min(oldest) if oldest else None,
                "failed": int(failed[0])}

    def failed_deliveries_since(self, since: float) -> int:
        return int(self._db.read.first(
            "SELECT COUNT(*) FROM deliveries WHERE state = 'failed' AND done_at >= ?", (since,))[0])
