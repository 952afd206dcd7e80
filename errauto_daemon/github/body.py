"""What a pull request says: its title and its description (Markdown).

Everything that came with the patch (names, titles, authors, check output)
is shown in code spans or escaped: it must not mention people or inject markup.
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pygit2

from errauto_daemon.errors import printable
from errauto_daemon.evidence.record import Evidence
from errauto_daemon.store import Submission

# How a pull request gets merged, as its body tells it.
BY_AUTO_MERGE = "auto-merge"  # GitHub, when the required checks pass
BY_PERSON = "person"  # a gate: no auto-merge
AT_ONCE = "at once"  # merge_via_pr: errauto merges it right after opening it

_HOW_MERGED = {
    BY_AUTO_MERGE: "**Auto-merge: on.** GitHub merges this pull request when the branch's "
                   "required checks pass.",
    BY_PERSON: "**Auto-merge: off.** A person must merge it (see the gates below).",
    AT_ONCE: "**Merged by errauto at once** (`merge_via_pr`), with the validated head pinned.",
}


@dataclass(frozen=True)
class FileChange:
    path: str
    added: int
    removed: int
    binary: bool


def files_changed(repo: pygit2.Repository, base: str, tree: str) -> list[FileChange]:
    base_tree = repo[base].peel(pygit2.Tree)
    new_tree = repo[tree].peel(pygit2.Tree)
    out = []
    for patch in base_tree.diff_to_tree(new_tree):
        if patch is None:
            continue
        _, added, removed = patch.line_stats
        out.append(FileChange(patch.delta.new_file.path, added, removed, bool(patch.delta.is_binary)))
    return out


def pull_request_title(sub: Submission) -> str:
    title = " ".join(printable(sub.title).split())[:200]
    return title or f"errauto: submission {sub.id}"


def pull_request_body(sub: Submission, explanation: Mapping[str, Any], files: Sequence[FileChange], *,
                      merged_by: str, max_files: int = 100) -> str:
    """Markdown: confidence, checks, files, source, and how to approve or reject."""
    lines = [
        *_verdict(sub, explanation),
        "", _HOW_MERGED[merged_by],
        "", *_checks(explanation),
        "", *_files(files, max_files),
        "", *_source(sub),
        "", _how_to_decide(sub, merged_by),
    ]
    return "\n".join(lines) + "\n"


def _verdict(sub: Submission, explanation: Mapping[str, Any]) -> list[str]:
    th = explanation.get("thresholds", {})
    return [
        f"errauto validated submission #{sub.id} on `{sub.target}` at "
        f"`{str(explanation.get('base', ''))[:12]}` and opened this pull request.",
        "",
        f"**Confidence {float(explanation.get('confidence', 0)):.2f}** (a pull request needs "
        f"{float(th.get('pull_request', 0)):.2f}, auto-merge {float(th.get('auto_merge', 0)):.2f}): "
        f"{_text(str(explanation.get('summary', '')))}",
    ]


def _checks(explanation: Mapping[str, Any]) -> list[str]:
    """The table of checks, then each gate and note."""
    lines = ["| check | status | duration | contribution |", "|---|---|---:|---:|"]
    for part in explanation.get("parts", []):
        status = part["status"] + (f" ({part['detail']})" if part.get("detail") else "")
        lines.append(f"| {_code(part['check'])} | {_cell(status)} | "
                     f"{float(part['duration']):.2f} s | {float(part['contribution']):.2f} of "
                     f"{float(part['weight']):.2f} |")
    if not explanation.get("parts"):
        lines.append("| (no checks configured) | | | |")
    evidence = Evidence.from_json(explanation.get("evidence")).readable()
    if evidence:
        lines += ["", "**Tests:**", ""]
        lines += ["  " * depth + ("- " if depth < 2 else "  > ") + _text(text) for depth, text in evidence]
    lines += [f"\nGate: {_text(gate)}" for gate in explanation.get("gates", [])]
    lines += [f"\nNote: {_text(note)}" for note in explanation.get("notes", [])]
    return lines


def _files(files: Sequence[FileChange], max_files: int) -> list[str]:
    added = sum(f.added for f in files)
    removed = sum(f.removed for f in files)
    lines = [f"**Files changed:** {len(files)} (+{added} −{removed})", "",
             "| file | + | − |", "|---|---:|---:|"]
    for f in files[:max_files]:
        counts = ("binary", "") if f.binary else (str(f.added), str(f.removed))
        lines.append(f"| {_code(f.path)} | {counts[0]} | {counts[1]} |")
    if len(files) > max_files:
        lines.append(f"| … and {len(files) - max_files} more | | |")
    return lines


def _source(sub: Submission) -> list[str]:
    source = _code(sub.source) + (f" ({_code(sub.source_detail)})" if sub.source_detail else "")
    lines = [f"**Source:** {source}" + (f", author {_code(sub.author)}" if sub.author else "") +
             f", errauto submission #{sub.id}."]
    if sub.note:
        lines.append(f"**Note from the submitter:** {_code(sub.note)}")
    return lines


def _how_to_decide(sub: Submission, merged_by: str) -> str:
    return ("**To approve**, merge this pull request" +
            (" (or let auto-merge do it)" if merged_by == BY_AUTO_MERGE else "") +
            f". **To reject**, close it. errauto records either outcome; "
            f"`errauto queue show {sub.id}` shows the details and check logs.")


def _code(text: str) -> str:
    text = printable(text).replace("`", "'").replace("|", "\\|")
    return f"`{text[:200]}`"


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|")


def _text(text: str) -> str:
    # A zero-width space after @ keeps GitHub from notifying whoever it names.
    return html.escape(printable(text), quote=False).replace("@", "@\u200b")
