"""The numbers `errauto status` shows, computed from the database.

Nothing is counted by hand: every number comes from `submissions` (what
each submission is now) and `events` (when each change happened). The
queries read covering indexes and return only what is shown, so a window
of 100,000 events takes tens of milliseconds (bench/status_speed.py).

Over the window (the last `days` days):
    submissions created in it: per state, route and source; the auto-merge
    rate (auto-merged / decided); their confidence (mean, median, histogram)
    decisions made in it (validations, and rejections at intake): per day,
    and how long each validation took (claimed -> decided)
    review time saved: auto-merged patches x each repository's
    `status.minutes_per_manual_patch`
Now, whatever the window:
    the queue (queued + validating) and the review backlog, with their oldest
    alerts not yet delivered, and each Slack webhook's state
"""
from __future__ import annotations

import datetime
import statistics
import time
from collections.abc import Mapping
from typing import Any

from errauto_daemon.store import DECIDED, STATES, Store

DAY = 86400.0
BUCKETS = 10  # confidence histogram: [0, 0.1), [0.1, 0.2), ... [0.9, 1.0]
DEFAULT_MINUTES = 15.0


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..1) of sorted `values`, by linear interpolation."""
    if not values:
        return None
    pos = (len(values) - 1) * q
    low = int(pos)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)


def collect(store: Store, days: int, *, now: float | None = None,
            minutes: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Everything `status` shows. `minutes`: minutes per manual patch, by repository."""
    now = time.time() if now is None else now
    since = now - days * DAY
    minutes = minutes or {}
    conn = store.conn

    states = {s: 0 for s in STATES}
    routes: dict[str, int] = {}
    sources: dict[str, int] = {}
    auto_merged_by_repo: dict[str, int] = {}
    # INDEXED BY: the covering index, whatever the planner's statistics say
    # (with them it prefers (state, created_at) and reads every row).
    for state, route, source, repo, n in conn.execute(
            "SELECT state, route, source, repo, COUNT(*) FROM submissions INDEXED BY submissions_window "
            "WHERE created_at >= ? GROUP BY state, route, source, repo", (since,)):
        states[state] = states.get(state, 0) + n
        if route is not None:
            routes[route] = routes.get(route, 0) + n
        sources[source] = sources.get(source, 0) + n
        if state == "merged" and route == "auto_merge":
            auto_merged_by_repo[repo] = auto_merged_by_repo.get(repo, 0) + n
    total = sum(states.values())
    decided = sum(states[s] for s in DECIDED)
    auto_merged = sum(auto_merged_by_repo.values())

    confidences = [r[0] for r in conn.execute(
        "SELECT confidence FROM submissions INDEXED BY submissions_window "
        "WHERE created_at >= ? AND confidence IS NOT NULL ORDER BY confidence", (since,))]
    histogram = [0] * BUCKETS
    for value in confidences:
        histogram[min(BUCKETS - 1, max(0, int(value * BUCKETS)))] += 1

    # Decisions errauto made in the window: validations, and rejections at intake.
    decisions = f"""FROM events e WHERE e.kind = 'state' AND e.to_state IN ({','.join('?' * len(DECIDED))})
        AND e.ts >= ? AND (e.from_state = 'validating' OR e.from_state IS NULL)"""
    per_day = {d: (n, merged) for d, n, merged in conn.execute(
        "SELECT date(e.ts, 'unixepoch', 'localtime') AS day, COUNT(*), SUM(e.to_state = 'merged') "
        f"{decisions} GROUP BY day", (*DECIDED, since))}
    # How long each validation took: recorded on its decision's event (events
    # older than that column: from the claim's event).
    durations = [r[0] for r in conn.execute(
        "SELECT COALESCE(e.duration, e.ts - (SELECT v.ts FROM events v WHERE v.submission_id = e.submission_id "
        "AND v.to_state = 'validating' AND v.id < e.id ORDER BY v.id DESC LIMIT 1)) AS took "
        f"{decisions} AND e.from_state = 'validating' AND took IS NOT NULL ORDER BY took", (*DECIDED, since))]
    dates = [_date(now - i * DAY) for i in range(days - 1, -1, -1)]
    throughput = [{"date": d, "decided": per_day.get(d, (0, 0))[0], "merged": per_day.get(d, (0, 0))[1]}
                  for d in dates]
    decisions_made = sum(n for n, _ in per_day.values())

    queue = conn.execute(
        "SELECT COUNT(*), MIN(created_at) FROM submissions WHERE state IN ('queued', 'validating')").fetchone()
    review = conn.execute(
        "SELECT COUNT(*), MIN(created_at) FROM submissions WHERE state = 'awaiting_review'").fetchone()
    oldest_pending = min((t for t in (queue[1], review[1]) if t is not None), default=None)

    saved_minutes = sum(n * minutes.get(repo, DEFAULT_MINUTES) for repo, n in auto_merged_by_repo.items())
    undelivered = store.undelivered()
    return {
        "days": days,
        "since": since,
        "submissions": total,
        "states": states,
        "routes": routes,
        "sources": sources,
        "decided": decided,
        "auto_merged": auto_merged,
        "auto_merge_rate": auto_merged / decided if decided else None,
        "confidence": {
            "count": len(confidences),
            "mean": statistics.fmean(confidences) if confidences else None,
            "median": statistics.median(confidences) if confidences else None,
            "histogram": [{"from": i / BUCKETS, "to": (i + 1) / BUCKETS, "count": histogram[i]}
                          for i in range(BUCKETS)],
        },
        # `pending` and `oldest_pending_seconds`: everything not decided for good yet.
        "pending": int(queue[0]) + int(review[0]),
        "oldest_pending_seconds": now - oldest_pending if oldest_pending is not None else None,
        "queue": {
            "depth": int(queue[0]),
            "oldest_seconds": now - queue[1] if queue[1] is not None else None,
            "awaiting_review": int(review[0]),
            "oldest_review_seconds": now - review[1] if review[1] is not None else None,
        },
        "validation_seconds": {
            "count": len(durations),
            "p50": percentile(durations, 0.50),
            "p95": percentile(durations, 0.95),
        },
        "throughput": {
            "decided": decisions_made,
            "per_day_mean": decisions_made / days,
            "per_day": throughput,
        },
        "review_hours_saved": saved_minutes / 60.0,
        "alerts": {
            "undelivered": undelivered["pending"],
            "oldest_undelivered_seconds": now - undelivered["oldest"] if undelivered["oldest"] else None,
            "failed": undelivered["failed"],
            "sinks": [_sink(s, now) for s in store.sink_states()],
        },
    }


def _date(ts: float) -> str:
    return datetime.date.fromtimestamp(ts).isoformat()


def _sink(row: Mapping[str, Any], now: float) -> dict[str, Any]:
    open_until = row["open_until"]
    if open_until is not None and open_until > now:
        state = "circuit open"
    elif row["failures"]:
        state = "failing"
    else:
        state = "ok"
    return {"name": row["name"], "state": state, "failures": row["failures"],
            "open_until": open_until, "last_error": row["last_error"], "last_ok_at": row["last_ok_at"]}
