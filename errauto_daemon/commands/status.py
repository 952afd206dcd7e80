"""`errauto status [--days N] [--json]`: how the pipeline has been doing."""
from __future__ import annotations

import sys
from errauto_daemon import metrics, output
from errauto_daemon.metrics import Status
from errauto_daemon.store import STATES, Store


def status(*, days: int = 30, as_json: bool) -> int:
    store = Store()
    data = metrics.collect(store, days, minutes=_minutes(store))
    if as_json:
        print(output.dumps(data.to_json()))
        return 0
    print("\n".join(render(data)))
    return 0


def _minutes(store: Store) -> dict[str, float]:
    """Minutes per manual patch of each registered repository (its `[status]`)."""
    from errauto_daemon.health import registered_configs

    return {root: c.status.minutes_per_manual_patch for root, c in registered_configs(store).items()}


def render(d: Status) -> list[str]:
    bar = "█" if (sys.stdout.encoding or "").lower().replace("-", "") == "utf8" else "#"
    lines = []
    head = f"last {d.days} days: {d.submissions.total} submissions; {d.pending} pending"
    if d.oldest_pending_seconds is not None:
        head += f", oldest {output.age(d.oldest_pending_seconds)}"
    lines.append(head)
    rate = d.submissions.auto_merge_rate
    lines.append(f"auto-merge rate: {_pct(rate)} ({d.submissions.auto_merged} of {d.submissions.decided} decided)"
                 if rate is not None else "auto-merge rate: - (nothing decided)")
    lines.append(f"review time saved: ~{d.submissions.review_hours_saved:.1f} h "
                 f"({d.submissions.auto_merged} auto-merged patches a person did not have to apply)")
    lines.append("")

    routes = [[r, str(n)] for r, n in sorted(d.submissions.routes.items(), key=lambda x: -x[1])]
    states = [[s, str(d.submissions.states[s])] for s in STATES if d.submissions.states.get(s)]
    sources = [[s, str(n)] for s, n in sorted(d.submissions.sources.items(), key=lambda x: -x[1])]
    lines += _side_by_side([
        output.table(["STATE", "COUNT"], states or [["-", "0"]]),
        output.table(["ROUTE", "COUNT"], routes or [["-", "0"]]),
        output.table(["SOURCE", "COUNT"], sources or [["-", "0"]]),
    ])
    lines.append("")

    conf = d.confidence
    if conf.count:
        lines.append(f"confidence: mean {conf.mean:.2f}, median {conf.median:.2f} ({conf.count} scored)")
        top = max(b.count for b in conf.histogram) or 1
        for b in conf.histogram:
            width = round(40 * b.count / top)
            lines.append(f"  {b.low:.1f}-{b.high:.1f} {bar * width}{' ' if width else ''}{b.count}")
    else:
        lines.append("confidence: - (nothing scored)")
    lines.append("")

    q = d.queue
    queue = f"queue: {q.depth} queued or validating"
    if q.oldest_seconds is not None:
        queue += f" (oldest {output.age(q.oldest_seconds)})"
    queue += f"; {q.awaiting_review} awaiting review"
    if q.oldest_review_seconds is not None:
        queue += f" (oldest {output.age(q.oldest_review_seconds)})"
    lines.append(queue)
    v = d.validation_seconds
    lines.append(f"validation time: p50 {_secs(v.p50)}, p95 {_secs(v.p95)} ({v.count} validations)"
                 if v.count else "validation time: - (no validations)")
    t = d.throughput
    recent = t.per_day[-7:]
    lines.append(f"throughput: {t.per_day_mean:.1f} decisions a day; last {len(recent)} days: "
                 + " ".join(str(x.decided) for x in recent))
    a = d.alerts
    alerts = f"alerts: {a.undelivered} undelivered"
    if a.oldest_undelivered_seconds is not None:
        alerts += f" (oldest {output.age(a.oldest_undelivered_seconds)})"
    if a.failed:
        alerts += f", {a.failed} deliveries failed for good"
    for sink in a.sinks:
        alerts += f"; {sink.name} {sink.state}"
        if sink.state != "ok" and sink.last_error:
            alerts += f" ({sink.last_error})"
    lines.append(alerts)
    return lines


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
        cells = [(b[i] if i < len(b) else "").ljust(w) for b, w in zip(split, widths)]
        out.append((" " * gap).join(cells).rstrip())
    return out
