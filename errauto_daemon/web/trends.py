"""The trends page (`/trends`): what `errauto status` and `errauto monitor` show, as charts.

The numbers are `metrics.trends` (which is `metrics.collect`, what `status`
prints, and the same counted per day) and `health.assess` (what `monitor`
grades), read through the app's `ReadOnlyStore`; the level is assessed, not
recorded (only `monitor` and the daemon record it). The charts are drawn
by `charts` and rendered as inline SVG by the template, each beside a table
of the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from flask import Flask, current_app, render_template, request

from errauto_daemon import health, metrics, output
from errauto_daemon.config import Config
from errauto_daemon.presence import running_pid
from errauto_daemon.store import ReadOnlyStore
from errauto_daemon.web import charts

DEFAULT_DAYS = 30
MAX_DAYS = 365
KIND_COLOURS = 8  # alert kinds take the classes kind-0 .. kind-7, in turn


def register(app: Flask) -> None:
    app.add_url_rule("/trends", "trends", trends_page)


def window() -> int:
    """`?days=N`, kept within 1..MAX_DAYS (default DEFAULT_DAYS)."""
    days = request.args.get("days", type=int)
    return DEFAULT_DAYS if days is None else min(MAX_DAYS, max(1, days))


def trends_page() -> str:
    store: ReadOnlyStore = current_app.extensions["errauto_store"]
    days = window()
    configs = health.registered_configs(store)
    data = metrics.trends(store, days, minutes={root: c.status.minutes_per_manual_patch
                                                for root, c in configs.items()})
    found = health.assess(store, daemon_pid=running_pid(),
                          thresholds=health.Thresholds.strictest([c.monitor for c in configs.values()]))
    marks = threshold_marks(configs)
    return render_template(
        "trends.html", days=days, max_days=MAX_DAYS, data=data, s=data.status, health=found, marks=marks,
        limits={c.name: c.limits_text() for c in found.criteria}, rate=_rates(data.status.throughput),
        charts=_charts(data, marks), bands=[name for _, name in metrics.WAIT_BANDS], seconds=seconds,
        percent=percent, repo_name=repo_name, when=output.when, change=store.last_change(),
        live_seconds=LIVE_SECONDS)


# How often an open trends page asks whether to draw itself again: drawing it reads a whole window
# (docs/performance.md), and a chart of days loses nothing by being half a minute behind.
LIVE_SECONDS = 30


@dataclass(frozen=True)
class Threshold:
    """One threshold line of the confidence histogram, and the repositories configured with it."""

    mark: charts.Mark
    repos: tuple[str, ...]  # empty: the default, no repository is registered


def threshold_marks(configs: dict[str, Config]) -> list[Threshold]:
    """The auto-merge and pull-request thresholds of the registered repositories (each distinct value once)."""
    out = []
    for name, css, key in (("auto-merge", "threshold-auto-merge", "auto_merge_threshold"),
                           ("pull request", "threshold-pull-request", "pr_threshold")):
        values: dict[float, list[str]] = {}
        for root, config in sorted(configs.items()):
            values.setdefault(float(getattr(config, key)), []).append(root)
        if not values:
            values = {float(getattr(Config, key)): []}
        for value, repos in sorted(values.items(), reverse=True):
            label = name if len(values) == 1 else f"{name} ({', '.join(repo_name(r) for r in repos)})"
            out.append(Threshold(charts.Mark(value, label, css), tuple(repos)))
    return out


def _rates(throughput: metrics.Throughput) -> list[float | None]:
    return [d.merged / d.decided if d.decided else None for d in throughput.per_day]


def _share(throughput: metrics.Throughput) -> float | None:
    merged = sum(d.merged for d in throughput.per_day)
    return merged / throughput.decided if throughput.decided else None


def _charts(data: metrics.Trends, marks: list[Threshold]) -> dict[str, charts.Chart]:
    s = data.status
    dates = [d.date for d in s.throughput.per_day]
    days = f"the last {s.days} days"
    kinds = list(data.alert_kinds)
    return {
        "decisions": charts.stacked_bars(
            "Decisions per day, by route",
            f"{s.throughput.decided} decisions in {days}: " + ", ".join(
                f"{route} {sum(d.counts[route] for d in data.decisions)}" for route in data.routes),
            dates, [charts.Series(route, f"route-{route}", tuple(float(d.counts[route]) for d in data.decisions))
                    for route in data.routes]),
        "rate": charts.line_chart(
            "Auto-merge rate per day",
            f"of each day's decisions, the share auto-merged; over {days}: {percent(_share(s.throughput))} "
            f"of {s.throughput.decided} decisions",
            dates, [charts.Series("auto-merge rate", "rate", tuple(_rates(s.throughput)))], top=1.0, fmt=percent),
        "confidence": charts.histogram(
            "Confidence of the submissions scored",
            f"{s.confidence.count} scored in {days}; thresholds: "
            + ", ".join(f"{t.mark.name} {t.mark.value:g}" for t in marks),
            [(b.low, b.high, b.count) for b in s.confidence.histogram], [t.mark for t in marks]),
        "times": charts.line_chart(
            "Time to decision per day (a validation, claimed to decided)",
            f"median {seconds(s.validation_seconds.p50)}, 95th percentile {seconds(s.validation_seconds.p95)} "
            f"over {s.validation_seconds.count} validations in {days}",
            dates, [charts.Series("median", "p50", tuple(d.p50 for d in data.times)),
                    charts.Series("95th percentile", "p95", tuple(d.p95 for d in data.times))], fmt=seconds),
        "waiting": charts.stacked_bars(
            "What waits now, by how long it has waited",
            "; ".join(f"{w.count} {w.name}" + (f", oldest {seconds(w.oldest_seconds)}" if w.oldest_seconds
                                                 is not None else "") for w in data.waiting),
            [name for _, name in metrics.WAIT_BANDS],
            [charts.Series(w.name, f"waiting-{i}", tuple(float(n) for n in w.bands))
             for i, w in enumerate(data.waiting)]),
        "alerts": charts.stacked_bars(
            "Alerts per day, by kind",
            f"{sum(data.alert_kinds.values())} alerts in {days}: "
            + ", ".join(f"{kind} {n}" for kind, n in data.alert_kinds.items()),
            dates, [charts.Series(kind, f"kind-{i % KIND_COLOURS}", tuple(float(d.counts[kind]) for d in data.alerts))
                    for i, kind in enumerate(kinds)]),
    }


def seconds(value: float | None) -> str:
    """A duration as `status` words it: seconds up to two minutes, then minutes, hours, days."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.2f}".rstrip("0").rstrip(".") + "s"  # an axis of 0.05 steps stays readable
    return f"{value:.1f}s" if value < 120 else output.age(value)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def repo_name(root: str) -> str:
    return PurePath(root).name or root
