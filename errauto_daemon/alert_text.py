"""What an alert says: its one-line summary, what a person should do about it,
its `alerts.jsonl` record and its Slack message. Pure: no I/O.

Text that came from a patch (its title, a reason quoting it) is untrusted:
in Slack's markup it can carry no link, mention or `<!channel>`.
"""
from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from errauto_daemon.domain import PRState
from errauto_daemon.errors import printable
from errauto_daemon.store import Alert

TITLES = {
    "auto_merged": "Auto-merged",
    "merged": "Merged",
    "auto_merge_failed": "Auto-merge failed",
    "pr_opened": "Pull request opened",
    "pr_failed": "Pull request problem",
    "review_needed": "Review needed",
    "rejected": "Rejected",
    "daemon_error": "errauto error",
    "monitor_warning": "errauto monitor: warning",
    "monitor_critical": "errauto monitor: critical",
    "monitor_ok": "errauto monitor: ok again",
    "inbox_skipped": "Inbox file not taken",
    "config_invalid": "errauto configuration invalid",
    "state_lost": "errauto state lost",
}
EMOJI = {
    "auto_merged": ":white_check_mark:",
    "merged": ":white_check_mark:",
    "auto_merge_failed": ":warning:",
    "pr_opened": ":arrow_heading_up:",
    "pr_failed": ":warning:",
    "review_needed": ":eyes:",
    "rejected": ":no_entry_sign:",
    "daemon_error": ":rotating_light:",
    "monitor_warning": ":warning:",
    "monitor_critical": ":rotating_light:",
    "monitor_ok": ":large_green_circle:",
    "inbox_skipped": ":warning:",
    "config_invalid": ":warning:",
    "state_lost": ":rotating_light:",
}


def summary(alert: Alert) -> str:
    """One line: what happened to what."""
    d = alert.data
    head = TITLES.get(alert.kind, alert.kind)
    if alert.submission_id is None:
        return f"{head}: {d.get('detail') or ''}".rstrip(": ")
    text = f"{head}: #{alert.submission_id} {d.get('title') or ''}".rstrip()
    facts = []
    if d.get("route"):
        facts.append(f"route {d['route']}")
    if d.get("confidence") is not None:
        facts.append(f"confidence {d['confidence']:.2f}")
    if alert.target:
        facts.append(f"into {alert.target}")
    return text + (f" ({', '.join(facts)})" if facts else "")


def action(alert: Alert) -> str | None:
    """What a person should do about it, if anything."""
    i, d = alert.submission_id, alert.data
    if alert.kind == "review_needed":
        return (f"look at it with `errauto queue show {i}`, then `errauto queue approve {i}` "
                f"or `errauto queue reject {i} --reason ...`")
    if alert.kind == "auto_merge_failed":
        if d.get("pr_url"):
            return f"merge {d['pr_url']} yourself, or see `errauto queue show {i}`"
        return f"see why with `errauto queue show {i}`; `errauto queue approve {i}` merges it"
    if alert.kind == "pr_opened":
        if d.get("pr_state") == PRState.AUTO_MERGE:
            return "nothing: GitHub merges it when its checks pass"
        return f"review and merge {d.get('pr_url') or 'the pull request'}"
    if alert.kind == "pr_failed":
        return f"see `errauto queue show {i}`; the patch waits for a person"
    if alert.kind == "rejected":
        return f"the reason is in `errauto queue show {i}`; send a fixed patch again"
    if alert.kind == "daemon_error":
        return (f"see `errauto queue show {i}` and the daemon log" if i is not None
                else "see the daemon log (`errauto daemon status`)")
    if alert.kind in ("monitor_warning", "monitor_critical"):
        return "run `errauto monitor` and `errauto status` for details"
    if alert.kind == "inbox_skipped":
        return "see the reason file beside it in the inbox's rejected/ folder; drop a readable copy"
    if alert.kind == "config_invalid":
        return "fix the configuration on the target branch and commit it; its patches wait until then"
    if alert.kind == "state_lost":
        return "the daemon stopped: check the state directory, then start it again (`errauto daemon start`)"
    return None


def jsonl_record(alert: Alert) -> dict[str, Any]:
    when = datetime.datetime.fromtimestamp(alert.created_at, datetime.timezone.utc)
    return {
        "id": alert.id,
        "time": when.isoformat(timespec="milliseconds"),
        "kind": alert.kind,
        "level": alert.level,
        "summary": summary(alert),
        "action": action(alert),
        "submission": alert.submission_id,
        "repo": alert.repo,
        "target": alert.target,
        "data": alert.data,
    }


def _mrkdwn(text: str) -> str:
    """Text from patches is untrusted: no links, mentions or `<!channel>` through it,
    and no control characters (shown escaped, as on a terminal)."""
    return printable(text, keep="\n").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    if not url.startswith(("https://", "http://")) or any(c in url for c in "<>| "):
        return _mrkdwn(url)
    return f"<{url}|{_mrkdwn(label)}>"


def slack_block(alert: Alert) -> str:
    d = alert.data
    lines = [f"{EMOJI.get(alert.kind, '')} *{TITLES.get(alert.kind, alert.kind)}*".strip()]
    if alert.submission_id is not None:
        lines[0] += f"  #{alert.submission_id} {_mrkdwn(str(d.get('title') or ''))}"
        facts = []
        if d.get("route"):
            facts.append(f"route `{d['route']}`")
        if d.get("confidence") is not None:
            facts.append(f"confidence *{d['confidence']:.2f}*")
        if alert.target:
            where = Path(alert.repo).name if alert.repo else ""
            facts.append(f"`{_mrkdwn(alert.target)}`" + (f" in `{_mrkdwn(where)}`" if where else ""))
        if facts:
            lines.append(" · ".join(facts))
        if d.get("reason"):
            lines.append(_mrkdwn(_shorten(str(d["reason"]), 600)))
        if d.get("pr_url"):
            lines.append(_link(str(d["pr_url"]), f"pull request #{d.get('pr_number') or ''}".rstrip(" #")))
    if d.get("detail") and (alert.submission_id is None or alert.kind in ("pr_failed", "auto_merge_failed")):
        lines.append(_mrkdwn(_shorten(str(d["detail"]), 1200)))
    todo = action(alert)
    if todo:
        lines.append(f"→ {_mrkdwn(todo)}")
    return _shorten("\n".join(lines), 2900)


def slack_message(alerts: Sequence[Alert]) -> dict[str, Any]:
    """One message for a burst of alerts: a fallback text and a section per alert."""
    text = "\n".join(_mrkdwn(summary(a)) for a in alerts)
    if len(alerts) > 1:
        text = f"{len(alerts)} errauto alerts\n" + text
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": slack_block(a)}} for a in alerts]
    return {"text": _shorten(text, 3000), "blocks": blocks}


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
