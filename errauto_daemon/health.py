"""How the pipeline is doing, in one level: ok, warning or critical.

Read by the `errauto-status` hook and `errauto daemon status`; computed from
the database only (the daemon's heartbeat row and the queue), so it is cheap
enough for every commit.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from errauto_daemon.store import Store

LEVELS = ("ok", "warning", "critical")

# Defaults until configured otherwise: (warning, critical).
BACKLOG = (10, 50)  # submissions waiting for a person
OLDEST = (24 * 3600.0, 72 * 3600.0)  # seconds the oldest waits
HEARTBEAT = (15.0, 120.0)  # seconds since the daemon's last heartbeat


@dataclass(frozen=True)
class Health:
    level: str
    awaiting_review: int
    oldest_pending: float | None  # seconds
    queued: int
    daemon: str  # "alive", "not running", "no heartbeat for Ns"
    reasons: tuple[str, ...] = field(default=())

    def line(self) -> str:
        parts = [f"{self.awaiting_review} awaiting review"]
        if self.oldest_pending is not None and self.awaiting_review:
            parts[0] += f" (oldest {_age(self.oldest_pending)})"
        if self.queued:
            parts.append(f"{self.queued} queued")
        text = f"errauto: {', '.join(parts)}; daemon {self.daemon}; {self.level}"
        return text + (f" ({'; '.join(self.reasons)})" if self.reasons else "")


def _age(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _grade(value: float, limits: tuple[float, float]) -> int:
    return 2 if value >= limits[1] else 1 if value >= limits[0] else 0


def assess(store: Store, *, daemon_pid: int | None, now: float | None = None) -> Health:
    now = time.time() if now is None else now
    row = store.conn.execute(
        "SELECT COUNT(*), MIN(created_at) FROM submissions WHERE state = 'awaiting_review'").fetchone()
    awaiting, oldest_at = int(row[0]), row[1]
    queued = store.count(("queued", "validating"))
    oldest = now - oldest_at if oldest_at is not None else None
    grades: list[tuple[int, str]] = []
    grades.append((_grade(awaiting, BACKLOG), f"{awaiting} awaiting review"))
    if oldest is not None:
        grades.append((_grade(oldest, OLDEST), f"oldest waits {_age(oldest)}"))
    heartbeat = store.daemon_row()
    if daemon_pid is None:
        daemon = "not running"
        # Nobody is validating: that matters once something is waiting.
        grades.append((2 if queued else 1, "no daemon is running"))
    elif heartbeat is None:
        daemon = "starting"
    else:
        age = now - heartbeat["heartbeat_at"]
        daemon = "alive" if age < HEARTBEAT[0] else f"no heartbeat for {int(age)}s"
        grades.append((_grade(age, HEARTBEAT), f"daemon heartbeat {int(age)}s old"))
    worst = max((g for g, _ in grades), default=0)
    reasons = tuple(text for g, text in grades if g == worst and g > 0)
    return Health(LEVELS[worst], awaiting, oldest, queued, daemon, reasons)
