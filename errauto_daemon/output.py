"""How decisions, submissions and tables are shown to people and to scripts.

Titles, authors, reasons, file names, check output: much of what is shown
came from a patch, which anyone may have written. Every line meant for a
terminal goes through `printable`, so an escape sequence in a subject is
shown as `\\x1b[...` rather than obeyed. JSON needs nothing more: `dumps`
escapes every control character itself.
"""
from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from errauto_daemon.domain import FAILING, PRState, State
from errauto_daemon.errors import EXIT_INTERNAL, EXIT_OK, EXIT_REJECTED, EXIT_REVIEW
from errauto_daemon.errors import printable as printable  # commands make text from patches safe with it
from errauto_daemon.evidence.record import Evidence
from errauto_daemon.store import CheckRow, Submission

STATE_EXIT = {
    State.MERGED: EXIT_OK,
    State.PR_OPEN: EXIT_OK,
    State.AWAITING_REVIEW: EXIT_REVIEW,
    State.QUEUED: EXIT_REVIEW,
    State.VALIDATING: EXIT_REVIEW,
    State.REJECTED: EXIT_REJECTED,
    State.FAILED: EXIT_INTERNAL,
}


def exit_code(sub: Submission) -> int:
    return STATE_EXIT[sub.state]


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def headline(sub: Submission) -> str:
    what = {
        State.MERGED: f"merged into {sub.target}" + (f" as {sub.merged_commit[:10]}" if sub.merged_commit else ""),
        State.PR_OPEN: f"pull request opened: {sub.pr_url}",
        State.AWAITING_REVIEW: "held for review",
        State.REJECTED: "rejected",
        State.FAILED: "failed",
        State.QUEUED: "queued",
        State.VALIDATING: "being validated",
    }[sub.state]
    return printable(f"#{sub.id} {what}: {sub.title}")


PR_STATES = {
    PRState.OPEN: "open, auto-merge off",
    PRState.AUTO_MERGE: "open, auto-merge enabled",
    PRState.AUTO_MERGE_FAILED: "open, auto-merge could not be enabled",
    PRState.MERGED: "merged",
    PRState.CLOSED: "closed without merging",
}


def pull_request_line(sub: Submission) -> str | None:
    if not sub.pr_url:
        return None
    state = PR_STATES[sub.pr_state] if sub.pr_state else "state unknown"
    return f"pull request: {sub.pr_url} ({state})"


def decision_lines(sub: Submission) -> list[str]:
    lines = [headline(sub)]
    if sub.reason:
        lines.append(f"  reason: {sub.reason}")
    lines += ["  " + line for line in explanation_lines(sub)]
    return [printable(line) for line in lines]


def explanation_lines(sub: Submission) -> list[str]:
    """The score, its parts, the evidence and the gates in words (what `queue show` prints under the reason)."""
    explanation = sub.explanation or {}
    return [printable(line) for line in _explanation_lines(explanation)] if explanation else []


def _explanation_lines(ex: dict[str, Any]) -> list[str]:
    th = ex.get("thresholds", {})
    margins = ex.get("margins", {})

    def margin(m: float) -> str:
        return f"clears by {m:.2f}" if m >= 0 else f"short by {-m:.2f}"

    out = [f"confidence {ex.get('confidence', 0):.2f}  (auto-merge needs {th.get('auto_merge', 0):.2f}: "
           f"{margin(margins.get('auto_merge', 0))}; pull request needs {th.get('pull_request', 0):.2f}: "
           f"{margin(margins.get('pull_request', 0))})"]
    parts = ex.get("parts", [])
    width = max([len(p["check"]) for p in parts] + [5])
    for p in parts:
        out.append(f"  {p['check']:<{width}}  {p['status']:<9} {p['contribution']:.2f} of {p['weight']:.2f}"
                   f"  {p['detail']}  ({p['duration']:.2f}s)")
    if not parts:
        out.append("  no checks are configured (see `errauto init` and docs/configuration.md)")
    evidence = Evidence.from_json(ex.get("evidence")).readable()
    if evidence:
        out.append("evidence:")
        out += ["  " + "  " * depth + ("| " if depth == 2 else "") + text for depth, text in evidence]
    out += [f"  gate: {g}" for g in ex.get("gates", [])]
    out += [f"  review only: {r}" for r in ex.get("review_only", [])]
    out += [f"  note: {n}" for n in ex.get("notes", [])]
    return out


def submission_json(sub: Submission, checks: Sequence[CheckRow] = (), *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": sub.id,
        "state": sub.state,
        "route": sub.route,
        "title": sub.title,
        "author": sub.author,
        "repo": sub.repo,
        "target": sub.target,
        "source": sub.source,
        "confidence": sub.confidence,
        "reason": sub.reason,
        "merged_commit": sub.merged_commit,
        "pr_url": sub.pr_url,
        "pr_number": sub.pr_number,
        "pr_state": sub.pr_state,
        "created_at": sub.created_at,
        "decided_at": sub.decided_at,
    }
    if full:
        out.update({
            "source_detail": sub.source_detail,
            "note": sub.note,
            "patch": str(sub.patch_path()),
            "base_commit": sub.base_commit,
            "result_tree": sub.result_tree,
            "attempts": sub.attempts,
            "explanation": sub.explanation,
            "checks": [
                {"name": c.name, "status": c.status, "exit_code": c.exit_code,
                 "duration": round(c.duration, 3), "score": c.score, "weight": c.weight,
                 "detail": c.detail, "log": c.log_path}
                for c in checks
            ],
        })
    return out


def repo_label(sub: Submission) -> str:
    """A repository in a table: its directory's name and the target, `proj:main`."""
    return f"{PurePath(sub.repo).name or sub.repo}:{sub.target}"


TAIL_BYTES = 64 * 1024  # enough for ten lines of any sane log, never the whole of a huge one


def check_failed(check: CheckRow) -> bool:
    return check.status in FAILING


def log_tail(path: str | None, lines: int = 10) -> list[str]:
    """The last non-empty lines a check printed: where its failure usually is.

    errauto's own trailer (`# errauto: exit code 1 ...`) is left out: the
    check's detail says it already. Logs are redacted when written.
    """
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    kept = [printable(line.rstrip(), keep="\t") for line in text.splitlines()
            if line.strip() and not line.startswith("# errauto:")]
    return kept[-lines:]


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    rows = [[printable(cell) for cell in row] for row in rows]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    def fmt(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
    lines = [fmt(headers), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def shorten(text: str, width: int) -> str:
    """One line of at most `width` characters, made printable."""
    text = printable(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"
