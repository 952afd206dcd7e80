"""What an alert can be about, and how loud it is.

Pure data: imports nothing from errauto, so the configuration (which checks
`[alerts] disabled` against these kinds) and the store (which writes alerts
into its outbox) can both depend on it.
"""
from __future__ import annotations

ALERT_LEVELS = {
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
}
ALERT_KINDS = tuple(ALERT_LEVELS)
