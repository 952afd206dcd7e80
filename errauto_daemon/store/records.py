"""What the store hands out: frozen records, whatever the backend's row type."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from errauto_daemon.domain import DECIDED, FINAL, STATES, CheckStatus, PRState, Route, State, optional
from errauto_daemon.store.patches import patch_file

__all__ = ["DECIDED", "FINAL", "STATES"]  # re-exported: the store's callers name them from here

# What `Store.reject` did: rejected at once, or a cancel the submission's validator honours.
RejectHow = Literal["rejected", "cancel requested"]


@dataclass(frozen=True)
class Submission:
    id: int
    repo: str
    target: str
    source: str
    source_detail: str | None
    title: str
    author: str | None
    note: str | None
    patch_sha256: str
    dedup_key: str
    state: State
    route: Route | None
    confidence: float | None
    explanation: dict[str, Any] | None
    reason: str | None
    base_commit: str | None
    result_tree: str | None
    merged_commit: str | None
    merge_intent: str | None
    pr_url: str | None
    pr_number: int | None
    pr_state: PRState | None
    attempts: int
    created_at: float
    updated_at: float
    decided_at: float | None
    claimed_at: float | None = None  # when its current (or last) validation began
    remote: str | None = None  # the repository's push remote, its name among machines (None: its clone)
    recorded_by: str | None = None  # host:state directory of the machine that recorded it

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Submission:
        """From a `submissions` row (its explanation still JSON text)."""
        values = {f.name: row[f.name] for f in fields(cls)}
        values["explanation"] = json.loads(values["explanation"]) if values["explanation"] else None
        values["state"] = State(values["state"])
        values["route"] = optional(Route, values["route"])
        values["pr_state"] = optional(PRState, values["pr_state"])
        return cls(**values)

    def patch_path(self) -> Path:
        return patch_file(self.patch_sha256)


# The columns a caller may set through `transition` and `set_fields`.
TRANSITION_FIELDS = frozenset({"route", "confidence", "explanation", "reason", "base_commit", "result_tree",
                               "merged_commit", "merge_intent", "pr_url", "pr_number", "pr_state"})
FACT_FIELDS = frozenset({"merge_intent", "pr_url", "pr_number", "pr_state", "reason"})


def check_fields(method: str, given: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """A TypeError naming every field `method` does not take (real code: `python -O` keeps it)."""
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise TypeError(f"{method}() got unknown field{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(unknown)}; it takes {', '.join(sorted(allowed))}")


def check_state(state: str) -> State:
    """The `State` named `state`; a ValueError naming the states for any other word."""
    try:
        return State(state)
    except ValueError:
        raise ValueError(f"unknown state {state!r}; one of {', '.join(STATES)}") from None


@dataclass(frozen=True)
class Replacement:
    """A pushed commit and the commit errauto merged in its place."""
    submission_id: int
    author: str | None
    pushed: str
    merged: str


@dataclass(frozen=True)
class CheckRow:
    name: str
    attempt: int
    status: CheckStatus
    exit_code: int | None
    duration: float
    score: float
    weight: float
    detail: str | None
    log_path: str | None
    base_commit: str | None


@dataclass(frozen=True)
class ConfigProblem:
    """A watched repository whose configuration cannot be used, since when, and why."""

    repo: str
    digest: str  # which configuration: alerted once per digest
    error: str
    since: float


@dataclass(frozen=True)
class Worker:
    """A daemon using this database: which machine and state directory, and how it is doing."""

    host: str
    home: str  # its state directory on that machine
    pid: int
    version: str
    started_at: float
    heartbeat_at: float
    stopped_at: float | None  # None: it has not said it stopped
    slots: int  # validations it runs at once
    busy: int  # validations it was running at its last heartbeat

    @property
    def name(self) -> str:
        return f"{self.host}:{self.home}"


@dataclass(frozen=True)
class InboxFile:
    """A file taken from an inbox folder; `path` is where it lies now (absolute)."""

    id: int
    submission_id: int
    repo: str
    path: str
    machine: str | None = None  # host:state directory of the machine that took it (None: before schema 7)


@dataclass(frozen=True)
class Alert:
    """One row of the outbox: what happened, as it was when it happened."""

    id: int
    created_at: float
    kind: str
    level: str
    submission_id: int | None
    repo: str | None
    target: str | None
    data: dict[str, Any]  # title, route, state, confidence, reason, pr_url, detail, ...

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Alert:
        return cls(row["id"], row["created_at"], row["kind"], row["level"], row["submission_id"],
                   row["repo"], row["target"], json.loads(row["data"]))


@dataclass(frozen=True)
class Backlog:
    """How many submissions are in some states, and when the oldest of them was created."""

    count: int
    oldest_created_at: float | None


@dataclass(frozen=True)
class WindowCount:
    """Submissions created in a window with one state, route, source and repository."""

    state: State
    route: Route | None
    source: str
    repo: str
    count: int


@dataclass(frozen=True)
class DayCount:
    """Decisions made on one (local) day, and how many of them merged."""

    date: str
    decided: int
    merged: int


@dataclass(frozen=True)
class StateDay:
    """Decisions made on one (local) day that ended in one state."""

    date: str
    state: str
    count: int


@dataclass(frozen=True)
class KindDay:
    """Alerts of one kind raised on one (local) day."""

    date: str
    kind: str
    count: int


@dataclass(frozen=True)
class QueueFilter:
    """Which submissions a queue page shows; empty means all."""

    states: tuple[State, ...] = ()
    routes: tuple[Route, ...] = ()
    repo: str | None = None
    source: str | None = None
    title: str | None = None  # a substring of the title


@dataclass(frozen=True)
class QueuePage:
    submissions: tuple[Submission, ...]
    older: int | None  # the id the next (older) page starts below; None on the last page


@dataclass(frozen=True)
class FilterChoices:
    """The values the queue's filters can take, from what the store holds."""

    repos: tuple[str, ...]
    sources: tuple[str, ...]
