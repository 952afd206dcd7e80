"""`errauto status [--days N] [--json]`: how the pipeline has been doing."""
from __future__ import annotations

import sys
import time
from argparse import Namespace
from pathlib import PurePath
from typing import TYPE_CHECKING

from errauto_daemon import metrics, output
from errauto_daemon.daemon.control import worker_json, worker_lines
from errauto_daemon.metrics import Alerts, Confidence, Queue, Status, Throughput, ValidationTimes
from errauto_daemon.store import STATES, Store

if TYPE_CHECKING:
    from errauto_daemon.config import Config


def status(*, days: int = 30, as_json: bool) -> int:
    store = Store()
    configs = _configs(store)
    minutes = {root: c.status.minutes_per_manual_patch for root, c in configs.items()}
    data = metrics.collect(store, days, minutes=minutes)
    unsandboxed = _unsandboxed(store, configs)
    now = time.time()
    workers = [worker_json(w, now) for w in store.workers()]
    if as_json:
        print(output.dumps({**data.to_json(), "unsandboxed": unsandboxed, "workers": workers}))
        return 0
    warnings = [f"warning: checks run unsandboxed in {root} (sandbox = \"off\" in its configuration)"
                for root in unsandboxed]
    print("\n".join(output.printable(line) for line in [*warnings, *render(data), *worker_lines(workers)]))
    return 0


RECENT = 100  # the latest submissions whose explanations `status` reads for an unsandboxed run


def _unsandboxed(store: Store, configs: dict[str, Config]) -> list[str]:
    """The repositories whose checks run unsandboxed: configured so, or so in a recent validation."""
    from errauto_daemon.sandbox import UNSANDBOXED

    found = {root for root, c in configs.items() if c.sandbox == "off" and c.checks}
    found |= {s.repo for s in store.submissions(limit=RECENT)
              if UNSANDBOXED in (s.explanation or {}).get("notes", [])}
    return sorted(found)


def _configs(store: Store) -> dict[str, Config]:
    """Each registered repository's configuration: its `[status]`, and whether its checks are sandboxed."""
    from errauto_daemon.health import registered_configs

    return registered_configs(store)


def render(d: Status) -> list[str]:
    bar = "█" if (sys.stdout.encoding or "").lower().replace("-", "") == "utf8" else "#"
    return [*_summary(d), "", *_counts(d), "", *_confidence(d.confidence, bar), "",
            _queue(d.queue), _validation_time(d.validation_seconds), _throughput(d.throughput),
            _alerts(d.alerts), *_flaky(d)]


def _flaky(d: Status) -> list[str]:
    if not d.flaky:
        return []
    lines = ["flaky tests (failed, then passed when run again):"]
    for f in d.flaky:
        lines.append(output.printable(f"  {f.test} in {PurePath(f.repo).name}: flaky in {f.times} "
                                      f"validation{'s' if f.times != 1 else ''}, failed {f.failures} of "
                                      f"{f.runs} runs"))
    return lines


def _summary(d: Status) -> list[str]:
    s = d.submissions
    head = f"last {d.days} days: {s.total} submissions; {d.pending} pending"
    if d.oldest_pending_seconds is not None:
        head += f", oldest {output.age(d.oldest_pending_seconds)}"
    rate = s.auto_merge_rate
    return [
        head,
        f"auto-merge rate: {_pct(rate)} ({s.auto_merged} of {s.decided} decided)"
        if rate is not None else "auto-merge rate: - (nothing decided)",
        f"review time saved: ~{s.review_hours_saved:.1f} h "
        f"({s.auto_merged} auto-merged patches a person did not have to apply)",
    ]


def _counts(d: Status) -> list[str]:
    """Submissions by state, route and source: three tables side by side."""
    s = d.submissions
    routes = [[r, str(n)] for r, n in sorted(s.routes.items(), key=lambda x: -x[1])]
    states = [[state, str(s.states[state])] for state in STATES if s.states.get(state)]
    sources = [[src, str(n)] for src, n in sorted(s.sources.items(), key=lambda x: -x[1])]
    return _side_by_side([
        output.table(["STATE", "COUNT"], states or [["-", "0"]]),
        output.table(["ROUTE", "COUNT"], routes or [["-", "0"]]),
        output.table(["SOURCE", "COUNT"], sources or [["-", "0"]]),
    ])


def _confidence(conf: Confidence, bar: str) -> list[str]:
    """The mean and median confidence, and its histogram."""
    if not conf.count:
        return ["confidence: - (nothing scored)"]
    lines = [f"confidence: mean {conf.mean:.2f}, median {conf.median:.2f} ({conf.count} scored)"]
    top = max(b.count for b in conf.histogram) or 1
    for b in conf.histogram:
        width = round(40 * b.count / top)
        lines.append(f"  {b.low:.1f}-{b.high:.1f} {bar * width}{' ' if width else ''}{b.count}")
    return lines


def _queue(q: Queue) -> str:
    line = f"queue: {q.depth} queued or validating"
    if q.oldest_seconds is not None:
        line += f" (oldest {output.age(q.oldest_seconds)})"
    line += f"; {q.awaiting_review} awaiting review"
    if q.oldest_review_seconds is not None:
        line += f" (oldest {output.age(q.oldest_review_seconds)})"
    return line


def _validation_time(v: ValidationTimes) -> str:
    if not v.count:
        return "validation time: - (no validations)"
    return f"validation time: p50 {_secs(v.p50)}, p95 {_secs(v.p95)} ({v.count} validations)"


def _throughput(t: Throughput) -> str:
    recent = t.per_day[-7:]
    return (f"throughput: {t.per_day_mean:.1f} decisions a day; last {len(recent)} days: "
            + " ".join(str(x.decided) for x in recent))


def _alerts(a: Alerts) -> str:
    line = f"alerts: {a.undelivered} undelivered"
    if a.oldest_undelivered_seconds is not None:
        line += f" (oldest {output.age(a.oldest_undelivered_seconds)})"
    if a.failed:
        line += f", {a.failed} deliveries failed for good"
    for sink in a.sinks:
        line += f"; {sink.name} {sink.state}"
        if sink.state != "ok" and sink.last_error:
            line += f" ({sink.last_error})"
    return line


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 120 else output.age(value)


def _side_by_side(blocks: list[str], gap: int = 4) -> list[str]:
    split = [b.splitlines() for b in blocks]
    widths = [max(len(line) for line in b) for b in split]
    height = max(len(b) for b in split)
    out = []
    for i in range(height):
        cells = [(b[i] if i < len(b) else "").ljust(w) for b, w in zip(split, widths, strict=True)]
        out.append((" " * gap).join(cells).rstrip())
    return out


# -- the command line (main.py dispatches each parsed command here) --------------

def cli(args: Namespace) -> int:
    """`errauto status`."""
    return status(days=args.days, as_json=args.json)
