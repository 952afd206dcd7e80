"""Alert policy: which change raises which alert, how loud it is, what it says. Pure.

The store writes an alert into its outbox in the same transaction as the
change that raises it; what that alert is, and whether there is one, is
decided here. This module does no I/O and imports nothing of errauto but
the leaf `domain`, so that the configuration (which validates `[alerts]
disabled` against `ALERT_KINDS`) can import it.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from errauto_daemon.domain import Route, State

# What an alert can be about, and how loud it is.
ALERT_LEVELS: dict[str, str] = {
    "auto_merged": "info",
    "merged": "info",  # merged after a person approved it, or its pull request was merged
    "auto_merge_failed": "warning",
    "pr_opened": "info",
    "pr_failed": "warning",
    "review_needed": "warning",
    "rejected": "info",
    "daemon_error": "critical",
    "monitor_warning": "warning",
    "monitor_critical": "critical",
    "monitor_ok": "info",
    "inbox_skipped": "warning",  # an inbox entry that cannot be taken: set aside with its reason
    "config_invalid": "warning",  # a watched repository's configuration cannot be used
    "state_lost": "critical",  # the state database was deleted or replaced under the daemon
}
ALERT_KINDS = tuple(ALERT_LEVELS)

# The submission's columns an alert keeps a snapshot of.
SNAPSHOT_FIELDS = ("title", "state", "route", "confidence", "reason", "source",
                   "pr_url", "pr_number", "pr_state", "merged_commit")


def level_of(kind: str) -> str:
    """The level of an alert kind; ValueError for a kind that does not exist."""
    try:
        return ALERT_LEVELS[kind]
    except KeyError:
        raise ValueError(f"unknown alert kind {kind!r}; one of {', '.join(ALERT_KINDS)}") from None


def alert_for(from_state: str | None, to_state: str, route: str | None,
              decided_route: str | None) -> str | None:
    """The alert a state change raises, if any.

    `route` is the submission's route after the change; `decided_route` the
    route its last validation decided (they differ when a route could not be
    carried out, e.g. an auto-merge held for review).
    """
    if to_state == from_state:
        return None  # e.g. pr_open again after a GitHub failure: that raised its own alert
    if to_state == State.MERGED:
        return "auto_merged" if route == Route.AUTO_MERGE else "merged"
    if to_state == State.AWAITING_REVIEW:
        return "auto_merge_failed" if decided_route == Route.AUTO_MERGE else "review_needed"
    return _BY_STATE.get(to_state)


_BY_STATE: dict[str, str] = {
    State.PR_OPEN: "pr_opened",
    State.REJECTED: "rejected",
    State.FAILED: "daemon_error",  # errauto could not decide: an internal or configuration error
}


def decided_route(explanation: str | None) -> str | None:
    """The route a submission's last validation decided, from its explanation (JSON)."""
    if not explanation:
        return None
    try:
        value = json.loads(explanation).get("route")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def alert_data(submission: Mapping[str, Any] | None, detail: str | None,
               extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """What an alert records: the submission as it is now, the detail, and any extra facts."""
    data: dict[str, Any] = {}
    if submission is not None:
        data = {k: submission[k] for k in SNAPSHOT_FIELDS}
    if detail:
        data["detail"] = detail
    data.update(extra or {})
    return data


def level_alerts(level: str, alerted: str | None, last_sent: float | None, now: float,
                 repeat_after: float) -> bool:
    """Whether the monitor alerts `level`, given the level it last alerted.

    Back to ok is alerted whenever a worse level was; a warning or critical
    level at most once per `repeat_after` seconds.
    """
    if level == (alerted or "ok"):
        return False
    if level == "ok":
        return True
    return last_sent is None or now - last_sent >= repeat_after
