"""How the pipeline is doing, in one level: ok, warning or critical.

Six criteria, each graded against a (warning, critical) pair of thresholds:

    daemon      the age of the daemon's heartbeat (no daemon: a warning, or
                critical when something waits to be validated)
    backlog     submissions awaiting a person's review
    oldest      how long the oldest of those has waited
    failures    the share of the last hour's decisions that ended `failed`
                (errauto could not decide: internal or configuration errors)
    outbox      how long the oldest undelivered alert has waited; a delivery
                that failed for good in the last day is a warning
    config      a watched repository whose configuration cannot be used (its
                patches wait): a warning while the daemon finds it so

The level is the worst grade. Computed from the database only, with indexed
queries, so it is cheap enough for the `errauto-status` hook on every commit.
`errauto monitor` and the daemon record each level they see (and the
thresholds they used) with `Store.record_level`; the hook reads those
thresholds back rather than loading every repository's configuration.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from errauto_daemon.config import Config
from errauto_daemon.config import Thresholds as Thresholds  # re-exported: callers import it from here
from errauto_daemon.domain import State
from errauto_daemon.output import age as age_text
from errauto_daemon.presence import heartbeat_fresh
from errauto_daemon.store import StoreAPI

LEVELS = ("ok", "warning", "critical")
TIME_CRITERIA = frozenset({"daemon", "oldest", "outbox", "workers"})  # criteria whose values are seconds
EXIT = {"ok": 0, "warning": 1, "critical": 2}
HOUR = 3600.0


@dataclass(frozen=True)
class Criterion:
    name: str
    level: str
    value: float | None
    warning: float | None
    critical: float | None
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "value": self.value, "warning": self.warning,
                "critical": self.critical, "text": self.text}

    def limits_text(self) -> str:
        """Its thresholds in words, as `monitor` and the trends page of `errauto web` show them."""
        if self.warning is None or self.critical is None:
            return ""
        if self.name in TIME_CRITERIA:
            return f"  [warning {age_text(self.warning)}, critical {age_text(self.critical)}]"
        if self.name == "failures":
            return f"  [warning {self.warning:.0%}, critical {self.critical:.0%}]"
        return f"  [warning {self.warning:g}, critical {self.critical:g}]"


@dataclass(frozen=True)
class Health:
    level: str
    awaiting_review: int
    oldest_pending: float | None  # seconds
    queued: int
    daemon: str  # "alive", "not running", "no heartbeat for Ns"
    reasons: tuple[str, ...] = field(default=())
    criteria: tuple[Criterion, ...] = field(default=())
    thresholds: Thresholds = field(default=Thresholds())

    def line(self) -> str:
        parts = [f"{self.awaiting_review} awaiting review"]
        if self.oldest_pending is not None and self.awaiting_review:
            parts[0] += f" (oldest {age_text(self.oldest_pending)})"
        if self.queued:
            parts.append(f"{self.queued} queued")
        text = f"errauto: {', '.join(parts)}; daemon {self.daemon}; {self.level}"
        return text + (f" ({'; '.join(self.reasons)})" if self.reasons else "")

    @property
    def exit_code(self) -> int:
        return EXIT[self.level]

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "exit": self.exit_code, "reasons": list(self.reasons),
                "awaiting_review": self.awaiting_review, "oldest_pending_seconds": self.oldest_pending,
                "queued": self.queued, "daemon": self.daemon,
                "criteria": [c.to_json() for c in self.criteria],
                "thresholds": asdict(self.thresholds)}


def _grade(value: float, warning: float, critical: float) -> str:
    return "critical" if value >= critical else "warning" if value >= warning else "ok"


def assess(store: StoreAPI, *, daemon_pid: int | None, now: float | None = None,
           thresholds: Thresholds | None = None) -> Health:
    """Grade every criterion. Without `thresholds`: those the monitor last recorded, else defaults."""
    now = time.time() if now is None else now
    if thresholds is None:
        row = store.monitor_row()
        thresholds = Thresholds.from_json(row["thresholds"] if row else None)
    t = thresholds
    queued = store.count((State.QUEUED, State.VALIDATING))
    daemon, daemon_criterion = _daemon_criterion(store, daemon_pid, queued, now, t)
    awaiting, oldest, review_criteria = _review_criteria(store, now, t)
    criteria = (daemon_criterion, *review_criteria, _failures_criterion(store, now, t),
                _outbox_criterion(store, now, t), _config_criterion(store), _workers_criterion(store, now, t))
    worst = max((LEVELS.index(c.level) for c in criteria), default=0)
    reasons = tuple(c.text for c in criteria if LEVELS.index(c.level) == worst and worst > 0)
    return Health(LEVELS[worst], awaiting, oldest, queued, daemon, reasons, criteria, t)


def _daemon_criterion(store: StoreAPI, daemon_pid: int | None, queued: int, now: float,
                      t: Thresholds) -> tuple[str, Criterion]:
    """How the daemon is (as `Health.daemon` says it), and its grade by the age of its heartbeat."""
    heartbeat = store.daemon_row()
    if daemon_pid is None:
        # Nobody is validating: that matters once something is waiting.
        level = "critical" if queued else "warning"
        return "not running", Criterion("daemon", level, None, t.heartbeat_warning_seconds,
                                        t.heartbeat_critical_seconds, "no daemon is running")
    if heartbeat is None:
        return "starting", Criterion("daemon", "ok", None, t.heartbeat_warning_seconds,
                                     t.heartbeat_critical_seconds, "the daemon is starting")
    age = max(0.0, now - heartbeat["heartbeat_at"])
    alive = heartbeat_fresh(heartbeat["heartbeat_at"], now=now, within=t.heartbeat_warning_seconds)
    daemon = "alive" if alive else f"no heartbeat for {int(age)}s"
    return daemon, Criterion(
        "daemon", _grade(age, t.heartbeat_warning_seconds, t.heartbeat_critical_seconds), round(age, 1),
        t.heartbeat_warning_seconds, t.heartbeat_critical_seconds, f"daemon heartbeat {int(age)}s old")


def _workers_criterion(store: StoreAPI, now: float, t: Thresholds) -> Criterion:
    """Every daemon of the database that has not said it stopped (machines sharing a server each run
    one): graded by the heartbeat of the one silent longest, so a machine that went away is seen."""
    running = [w for w in store.workers() if w.stopped_at is None]
    warning, critical = t.heartbeat_warning_seconds, t.heartbeat_critical_seconds
    if not running:
        return Criterion("workers", "ok", None, warning, critical, "no worker is running")
    silent = max(running, key=lambda w: now - w.heartbeat_at)
    age = max(0.0, now - silent.heartbeat_at)
    alive = sum(heartbeat_fresh(w.heartbeat_at, now=now, within=warning) for w in running)
    text = f"{alive} of {len(running)} workers alive"
    level = _grade(age, warning, critical)
    if level != "ok":
        text += f"; {silent.host} (pid {silent.pid}, {silent.home}) silent for {int(age)}s"
    return Criterion("workers", level, round(age, 1), warning, critical, text)


def _review_criteria(store: StoreAPI, now: float,
                     t: Thresholds) -> tuple[int, float | None, tuple[Criterion, Criterion]]:
    """How many submissions await review and how long the oldest has waited: graded both."""
    backlog_row = store.backlog((State.AWAITING_REVIEW,))
    awaiting, oldest_at = backlog_row.count, backlog_row.oldest_created_at
    backlog = Criterion("backlog", _grade(awaiting, t.backlog_warning, t.backlog_critical), awaiting,
                        t.backlog_warning, t.backlog_critical, f"{awaiting} awaiting review")
    if oldest_at is None:
        return awaiting, None, (backlog, Criterion("oldest", "ok", None, t.oldest_warning_hours * HOUR,
                                                   t.oldest_critical_hours * HOUR, "nothing awaits review"))
    oldest = now - oldest_at
    return awaiting, oldest, (backlog, Criterion(
        "oldest", _grade(oldest / HOUR, t.oldest_warning_hours, t.oldest_critical_hours),
        round(oldest, 1), t.oldest_warning_hours * HOUR, t.oldest_critical_hours * HOUR,
        f"oldest waits {age_text(oldest)}"))


def _failures_criterion(store: StoreAPI, now: float, t: Thresholds) -> Criterion:
    """The share of the last hour's decisions that failed (not graded below a minimum of decisions)."""
    decided, failed = failure_counts(store, now - HOUR)
    rate = failed / decided if decided else 0.0
    level = "ok"
    if decided >= t.failure_min_decisions:
        level = _grade(rate, t.failure_rate_warning, t.failure_rate_critical)
    return Criterion("failures", level, round(rate, 4), t.failure_rate_warning, t.failure_rate_critical,
                     f"{failed} of {decided} decisions in the last hour failed")


def _outbox_criterion(store: StoreAPI, now: float, t: Thresholds) -> Criterion:
    """How long the oldest undelivered alert has waited; a delivery failed for good is a warning."""
    pending = store.undelivered()
    failed_for_good = store.failed_deliveries_since(now - 24 * HOUR)
    waited = now - pending["oldest"] if pending["oldest"] is not None else 0.0
    level = _grade(waited / 60, t.outbox_warning_minutes, t.outbox_critical_minutes) if pending["pending"] else "ok"
    text = f"{pending['pending']} alerts undelivered"
    if pending["pending"]:
        text += f" (oldest {age_text(waited)})"
    if failed_for_good:
        text += f"; {failed_for_good} deliveries failed for good in the last day"
        level = max(level, "warning", key=LEVELS.index)
    return Criterion("outbox", level, round(waited, 1), t.outbox_warning_minutes * 60,
                     t.outbox_critical_minutes * 60, text)


def _config_criterion(store: StoreAPI) -> Criterion:
    """Watched repositories whose configuration cannot be used (as the daemon last found them)."""
    problems = store.config_problems()
    if not problems:
        return Criterion("config", "ok", 0, 1, None, "every watched configuration can be used")
    first = problems[0]
    text = f"the configuration of {first.repo} cannot be used: {first.error}"
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more repositories)"
    return Criterion("config", "warning", len(problems), 1, None, text)


def failure_counts(store: StoreAPI, since: float) -> tuple[int, int]:
    """Decisions errauto made since `since` (validations and intake rejections), and how many failed."""
    return store.failure_counts(since)


def registered_configs(store: StoreAPI) -> dict[str, Config]:
    """The configuration of each registered repository that has a valid one.

    Read with the git command line, like the hooks (importing pygit2 would
    cost `status` and `monitor` more than their queries): from the target's
    committed tree, as always.
    """
    from errauto_daemon import config as config_mod
    from errauto_daemon.errors import FatalError

    out: dict[str, Config] = {}
    for root in store.repos():
        try:
            out[root] = config_mod.load_with_git(root)
        except (FatalError, OSError):
            continue  # gone, or misconfigured: the daemon reports that where it matters
    return out


def configured_thresholds(store: StoreAPI) -> Thresholds:
    """The registered repositories' `[monitor]` thresholds, each at its strictest."""
    return Thresholds.strictest([c.monitor for c in registered_configs(store).values()])


def check(store: StoreAPI, *, daemon_pid: int | None, thresholds: Thresholds,
          now: float | None = None) -> tuple[Health, int | None]:
    """Assess, record the level, and raise an alert if it changed. Returns the alert's id, if any."""
    health = assess(store, daemon_pid=daemon_pid, now=now, thresholds=thresholds)
    detail = "; ".join(health.reasons) if health.reasons else "every criterion is ok"
    extra = {"level": health.level, "criteria": [c.to_json() for c in health.criteria]}
    alert = store.record_level(health.level, detail, extra, thresholds.to_json(), now=now)
    return health, alert
