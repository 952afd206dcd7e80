"""The numbers `errauto status` shows, computed from the database.

Nothing is counted by hand: every number comes from `submissions` (what
each submission is now) and `events` (when each change happened), through
the store's read-only queries (store/queries.py).

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
from dataclasses import dataclass
from itertools import chain
from typing import Any

from errauto_daemon.domain import Route, State
from errauto_daemon.store import DECIDED, STATES, StoreAPI

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


@dataclass(frozen=True)
class Submissions:
    """Submissions created in the window, counted."""

    total: int
    states: dict[str, int]
    routes: dict[str, int]
    sources: dict[str, int]
    decided: int
    auto_merged: int
    review_hours_saved: float

    @property
    def auto_merge_rate(self) -> float | None:
        return self.auto_merged / self.decided if self.decided else None


@dataclass(frozen=True)
class Bucket:
    low: float
    high: float
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"from": self.low, "to": self.high, "count": self.count}


@dataclass(frozen=True)
class Confidence:
    count: int
    mean: float | None
    median: float | None
    histogram: tuple[Bucket, ...]

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "median": self.median,
                "histogram": [b.to_json() for b in self.histogram]}


@dataclass(frozen=True)
class Queue:
    """Now: what waits for a validation, and what waits for a person."""

    depth: int
    oldest_seconds: float | None
    awaiting_review: int
    oldest_review_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        return {"depth": self.depth, "oldest_seconds": self.oldest_seconds,
                "awaiting_review": self.awaiting_review, "oldest_review_seconds": self.oldest_review_seconds}


@dataclass(frozen=True)
class ValidationTimes:
    count: int
    p50: float | None
    p95: float | None

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "p50": self.p50, "p95": self.p95}


@dataclass(frozen=True)
class Day:
    date: str
    decided: int
    merged: int

    def to_json(self) -> dict[str, Any]:
        return {"date": self.date, "decided": self.decided, "merged": self.merged}


@dataclass(frozen=True)
class Throughput:
    decided: int
    per_day_mean: float
    per_day: tuple[Day, ...]  # every day of the window, oldest first

    def to_json(self) -> dict[str, Any]:
        return {"decided": self.decided, "per_day_mean": self.per_day_mean,
                "per_day": [d.to_json() for d in self.per_day]}


@dataclass(frozen=True)
class Sink:
    name: str
    state: str  # ok | failing | circuit open
    failures: int
    open_until: float | None
    last_error: str | None
    last_ok_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "failures": self.failures, "open_until": self.open_until,
                "last_error": self.last_error, "last_ok_at": self.last_ok_at}


@dataclass(frozen=True)
class Alerts:
    undelivered: int
    oldest_undelivered_seconds: float | None
    failed: int
    sinks: tuple[Sink, ...]

    def to_json(self) -> dict[str, Any]:
        return {"undelivered": self.undelivered, "oldest_undelivered_seconds": self.oldest_undelivered_seconds,
                "failed": self.failed, "sinks": [s.to_json() for s in self.sinks]}


@dataclass(frozen=True)
class Flaky:
    """A test that failed and then passed when run again, in `times` validations of the window."""

    repo: str
    test: str
    times: int
    runs: int
    failures: int

    def to_json(self) -> dict[str, Any]:
        return {"repo": self.repo, "test": self.test, "times": self.times, "runs": self.runs,
                "failures": self.failures}


@dataclass(frozen=True)
class Status:
    """Everything `errauto status` shows."""

    days: int
    since: float
    submissions: Submissions
    confidence: Confidence
    queue: Queue
    validation_seconds: ValidationTimes
    throughput: Throughput
    alerts: Alerts
    flaky: tuple[Flaky, ...] = ()  # the flakiest tests of the window, most often flaky first

    @property
    def pending(self) -> int:
        """Everything not decided for good yet: the queue and the review backlog."""
        return self.queue.depth + self.queue.awaiting_review

    @property
    def oldest_pending_seconds(self) -> float | None:
        return max((s for s in (self.queue.oldest_seconds, self.queue.oldest_review_seconds) if s is not None),
                   default=None)

    def to_json(self) -> dict[str, Any]:
        """The document `status --json` prints."""
        s = self.submissions
        return {
            "days": self.days,
            "since": self.since,
            "submissions": s.total,
            "states": s.states,
            "routes": s.routes,
            "sources": s.sources,
            "decided": s.decided,
            "auto_merged": s.auto_merged,
            "auto_merge_rate": s.auto_merge_rate,
            "confidence": self.confidence.to_json(),
            "pending": self.pending,
            "oldest_pending_seconds": self.oldest_pending_seconds,
            "queue": self.queue.to_json(),
            "validation_seconds": self.validation_seconds.to_json(),
            "throughput": self.throughput.to_json(),
            "review_hours_saved": s.review_hours_saved,
            "alerts": self.alerts.to_json(),
            "flaky_tests": [f.to_json() for f in self.flaky],
        }


FLAKIEST = 5  # flaky tests `status` lists


def collect(store: StoreAPI, days: int, *, now: float | None = None,
            minutes: Mapping[str, float] | None = None, durations: list[float] | None = None) -> Status:
    """Everything `status` shows. `minutes`: minutes per manual patch, by repository; `durations`:
    the window's validation durations, ascending, when the caller has read them already."""
    now = time.time() if now is None else now
    since = now - days * DAY
    return Status(
        days=days, since=since,
        submissions=_submissions(store, since, minutes or {}),
        confidence=_confidence(store.confidences(since)),
        queue=_queue(store, now),
        validation_seconds=_validation_times(store.validation_durations(since) if durations is None
                                             else durations),
        throughput=_throughput(store, since, days, now),
        alerts=_alerts(store, now),
        flaky=tuple(Flaky(*row) for row in store.flakiest(since, FLAKIEST)),
    )


def _submissions(store: StoreAPI, since: float, minutes: Mapping[str, float]) -> Submissions:
    states: dict[str, int] = {s.value: 0 for s in STATES}
    routes: dict[str, int] = {}
    sources: dict[str, int] = {}
    auto_merged_by_repo: dict[str, int] = {}
    for c in store.window_counts(since):
        states[c.state] = states.get(c.state, 0) + c.count
        if c.route is not None:
            routes[c.route] = routes.get(c.route, 0) + c.count
        sources[c.source] = sources.get(c.source, 0) + c.count
        if c.state == State.MERGED and c.route == Route.AUTO_MERGE:
            auto_merged_by_repo[c.repo] = auto_merged_by_repo.get(c.repo, 0) + c.count
    saved_minutes = sum(n * minutes.get(repo, DEFAULT_MINUTES) for repo, n in auto_merged_by_repo.items())
    return Submissions(total=sum(states.values()), states=states, routes=routes, sources=sources,
                       decided=sum(states[s] for s in DECIDED), auto_merged=sum(auto_merged_by_repo.values()),
                       review_hours_saved=saved_minutes / 60.0)


def _confidence(values: list[float]) -> Confidence:
    """`values` ascending."""
    histogram = [0] * BUCKETS
    for value in values:
        histogram[min(BUCKETS - 1, max(0, int(value * BUCKETS)))] += 1
    return Confidence(
        count=len(values),
        mean=statistics.fmean(values) if values else None,
        median=statistics.median(values) if values else None,
        histogram=tuple(Bucket(i / BUCKETS, (i + 1) / BUCKETS, histogram[i]) for i in range(BUCKETS)))


def _validation_times(durations: list[float]) -> ValidationTimes:
    """`durations` ascending."""
    return ValidationTimes(len(durations), percentile(durations, 0.50), percentile(durations, 0.95))


def _throughput(store: StoreAPI, since: float, days: int, now: float) -> Throughput:
    counts = {d.date: (d.decided, d.merged) for d in store.decisions_per_day(since)}
    dates = _dates(days, now)
    decided = sum(n for n, _ in counts.values())
    return Throughput(decided=decided, per_day_mean=decided / days,
                      per_day=tuple(Day(date, *counts.get(date, (0, 0))) for date in dates))


def _queue(store: StoreAPI, now: float) -> Queue:
    queue = store.backlog((State.QUEUED, State.VALIDATING))
    review = store.backlog((State.AWAITING_REVIEW,))
    return Queue(depth=queue.count, oldest_seconds=_age(queue.oldest_created_at, now),
                 awaiting_review=review.count, oldest_review_seconds=_age(review.oldest_created_at, now))


def _alerts(store: StoreAPI, now: float) -> Alerts:
    undelivered = store.undelivered()
    oldest = undelivered["oldest"]
    return Alerts(undelivered=undelivered["pending"], oldest_undelivered_seconds=now - oldest if oldest else None,
                  failed=undelivered["failed"], sinks=tuple(_sink(s, now) for s in store.sink_states()))


def _age(since: float | None, now: float) -> float | None:
    return now - since if since is not None else None


def _date(ts: float) -> str:
    return datetime.date.fromtimestamp(ts).isoformat()


def _dates(days: int, now: float) -> list[str]:
    """Every (local) day of the window, oldest first."""
    return [_date(now - i * DAY) for i in range(days - 1, -1, -1)]


def _sink(row: Mapping[str, Any], now: float) -> Sink:
    open_until = row["open_until"]
    if open_until is not None and open_until > now:
        state = "circuit open"
    elif row["failures"]:
        state = "failing"
    else:
        state = "ok"
    return Sink(name=row["name"], state=state, failures=row["failures"], open_until=open_until,
                last_error=row["last_error"], last_ok_at=row["last_ok_at"])


# -- the trends page of `errauto web`: what `status` counts, day by day ------------------

HOUR = 3600.0
# How long what waits now has waited: the upper edge of each band, and its name.
WAIT_BANDS = ((HOUR, "< 1 h"), (4 * HOUR, "1-4 h"), (DAY, "4 h-1 d"), (3 * DAY, "1-3 d"), (7 * DAY, "3-7 d"),
              (float("inf"), "7 d or more"))
# A decision's route, by the state it ended in (as carry_out pairs them); a validation that failed
# has no route and counts as `failed`. Shown in this order.
ROUTE_OF = {State.MERGED.value: Route.AUTO_MERGE.value, State.PR_OPEN.value: Route.PULL_REQUEST.value,
            State.AWAITING_REVIEW.value: Route.REVIEW.value, State.REJECTED.value: Route.REJECTED.value,
            State.FAILED.value: State.FAILED.value}
ROUTES = tuple(ROUTE_OF.values())


@dataclass(frozen=True)
class DayCounts:
    """One day's counts by name: decisions by route (every one of `Trends.routes`), alerts by kind
    (every one of `Trends.alert_kinds`); 0 where there were none."""

    date: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class DayTimes:
    """How long the validations decided on one day took."""

    date: str
    count: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True)
class Waiting:
    """Submissions waiting now (for a validation, or for a person), by how long they have waited."""

    name: str
    count: int
    oldest_seconds: float | None
    bands: tuple[int, ...]  # how many in each of WAIT_BANDS


@dataclass(frozen=True)
class Trends:
    """`status`'s numbers, and the same counted per day of the window."""

    status: Status
    routes: tuple[str, ...]  # the routes decided in the window, ROUTES first
    decisions: tuple[DayCounts, ...]  # every day of the window, oldest first
    times: tuple[DayTimes, ...]  # every day of the window, oldest first
    waiting: tuple[Waiting, ...]  # the queue, then the review backlog
    alert_kinds: dict[str, int]  # alerts raised in the window, by kind, most first
    alerts: tuple[DayCounts, ...]  # every day of the window, oldest first


def trends(store: StoreAPI, days: int, *, now: float | None = None,
           minutes: Mapping[str, float] | None = None) -> Trends:
    """What the trends page shows: `collect`'s numbers, and per day what they sum up."""
    now = time.time() if now is None else now
    since = now - days * DAY
    dates = _dates(days, now)
    durations = store.validation_durations_by_day(since)
    status = collect(store, days, now=now, minutes=minutes, durations=sorted(chain(*durations.values())))
    by_route: dict[tuple[str, str], int] = {}
    for row in store.decisions_by_state(since):
        key = (row.date, ROUTE_OF.get(row.state, row.state))
        by_route[key] = by_route.get(key, 0) + row.count
    seen = {route for _, route in by_route}
    routes = tuple(r for r in ROUTES if r in seen) + tuple(sorted(seen - set(ROUTES)))
    by_kind = {(a.date, a.kind): a.count for a in store.alerts_by_kind(since)}
    kinds: dict[str, int] = {}
    for (_, kind), n in by_kind.items():
        kinds[kind] = kinds.get(kind, 0) + n
    return Trends(
        status=status, routes=routes,
        decisions=tuple(DayCounts(d, {r: by_route.get((d, r), 0) for r in routes}) for d in dates),
        times=_times_per_day(durations, dates),
        waiting=(_waiting(store, "queued or validating", (State.QUEUED, State.VALIDATING), now),
                 _waiting(store, "awaiting review", (State.AWAITING_REVIEW,), now)),
        alert_kinds=dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
        alerts=tuple(DayCounts(d, {k: by_kind.get((d, k), 0) for k in kinds}) for d in dates),
    )


def _times_per_day(per_day: Mapping[str, list[float]], dates: list[str]) -> tuple[DayTimes, ...]:
    """`per_day`: each day's durations, ascending."""
    out = []
    for date in dates:
        took = per_day.get(date, [])
        out.append(DayTimes(date, len(took), percentile(took, 0.50), percentile(took, 0.95)))
    return tuple(out)


def _waiting(store: StoreAPI, name: str, states: tuple[State, ...], now: float) -> Waiting:
    created = store.waiting_since(states)
    bands = [0] * len(WAIT_BANDS)
    for at in created:
        waited = now - at
        bands[next(i for i, (edge, _) in enumerate(WAIT_BANDS) if waited < edge)] += 1
    return Waiting(name, len(created), now - created[0] if created else None, tuple(bands))
