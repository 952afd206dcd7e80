"""Charts as records of SVG shapes: numbers in, rectangles, lines and labels out.

Pure: no Flask, no store. A template (`_chart.html`) turns a `Chart` into
inline SVG, escaping every text as it does everywhere else; the shapes carry
only numbers and CSS class names chosen here (the strict CSP allows no
inline style, so colours come from classes in trends.css). Every shape has
a label (its SVG <title>), so each bar or point says what it stands for.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

WIDTH = 720.0
HEIGHT = 220.0
LEFT = 48.0  # room for the y axis' numbers
RIGHT = 12.0
TOP = 16.0
BOTTOM = 28.0  # room for the x axis' labels
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
X_LABELS = 8  # at most this many labels under the x axis
Y_TICKS = 4


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    label: str


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    css: str
    label: str = ""


@dataclass(frozen=True)
class Polyline:
    points: str  # "x,y x,y ..."
    css: str
    label: str


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    css: str
    label: str


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "middle"  # start | middle | end
    css: str = "axis-label"


@dataclass(frozen=True)
class Chart:
    title: str
    desc: str
    rects: tuple[Rect, ...] = ()
    lines: tuple[Line, ...] = ()
    polylines: tuple[Polyline, ...] = ()
    dots: tuple[Dot, ...] = ()
    texts: tuple[Text, ...] = ()
    legend: tuple[tuple[str, str], ...] = ()  # (name, css) of each series, when there are several
    width: float = WIDTH
    height: float = HEIGHT


@dataclass(frozen=True)
class Series:
    """One named row of values, one value per label of the chart (None: no value there)."""

    name: str
    css: str
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class Mark:
    """A vertical line at `value` on a chart whose x axis runs from 0 to 1 (a threshold)."""

    value: float
    name: str
    css: str


def nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 5, 10) if step * power >= value - 1e-9))


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.2f}".rstrip("0")


def _y(value: float, top: float) -> float:
    return round(TOP + PLOT_HEIGHT * (1 - value / top), 2)


def _y_axis(top: float, fmt: Callable[[float], str]) -> tuple[list[Line], list[Text]]:
    lines, texts = [], []
    for i in range(Y_TICKS + 1):
        value = top * i / Y_TICKS
        y = _y(value, top)
        lines.append(Line(LEFT, y, WIDTH - RIGHT, y, "grid" if i else "axis"))
        texts.append(Text(LEFT - 6, y + 4, fmt(value), "end"))
    return lines, texts


def _x_labels(labels: Sequence[str], centre: Callable[[int], float]) -> list[Text]:
    every = max(1, math.ceil(len(labels) / X_LABELS))
    return [Text(centre(i), HEIGHT - 8, label) for i, label in enumerate(labels) if i % every == 0]


def stacked_bars(title: str, desc: str, labels: Sequence[str], series: Sequence[Series], *,
                 fmt: Callable[[float], str] = _number) -> Chart:
    """A bar per label, each series' value stacked on the ones before it (zero-height parts left out)."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = nice_top(max(totals, default=0))
    band = PLOT_WIDTH / max(1, len(labels))
    bar = max(1.0, band * 0.8)
    rects = []
    for i, label in enumerate(labels):
        below = 0.0
        for s in series:
            value = s.values[i] or 0
            if value <= 0:
                continue
            y_top, y_bottom = _y(below + value, top), _y(below, top)
            rects.append(Rect(round(LEFT + band * i + (band - bar) / 2, 2), y_top, round(bar, 2),
                              round(y_bottom - y_top, 2), s.css, f"{label} {s.name}: {fmt(value)}"))
            below += value
    lines, texts = _y_axis(top, fmt)
    texts += _x_labels(labels, lambda i: round(LEFT + band * (i + 0.5), 2))
    return Chart(title, desc, rects=tuple(rects), lines=tuple(lines), texts=tuple(texts), legend=_legend(series))


def _legend(series: Sequence[Series]) -> tuple[tuple[str, str], ...]:
    return tuple((s.name, s.css) for s in series) if len(series) > 1 else ()


def line_chart(title: str, desc: str, labels: Sequence[str], series: Sequence[Series], *,
               top: float | None = None, fmt: Callable[[float], str] = _number) -> Chart:
    """A line per series across the labels, broken where a value is None; a dot on every value."""
    values = [v for s in series for v in s.values if v is not None]
    top = top if top is not None else nice_top(max(values, default=0))
    step = PLOT_WIDTH / max(1, len(labels))

    def x(i: int) -> float:
        return round(LEFT + step * (i + 0.5), 2)

    polylines, dots = [], []
    for s in series:
        run: list[str] = []
        for i, value in enumerate([*s.values, None]):
            if value is None:
                if len(run) > 1:
                    polylines.append(Polyline(" ".join(run), s.css, s.name))
                run = []
                continue
            run.append(f"{x(i)},{_y(value, top)}")
            dots.append(Dot(x(i), _y(value, top), s.css, f"{labels[i]} {s.name}: {fmt(value)}"))
    lines, texts = _y_axis(top, fmt)
    texts += _x_labels(labels, x)
    return Chart(title, desc, lines=tuple(lines), polylines=tuple(polylines), dots=tuple(dots), texts=tuple(texts),
                 legend=_legend(series))


def histogram(title: str, desc: str, buckets: Sequence[tuple[float, float, int]], marks: Sequence[Mark]) -> Chart:
    """Bars over an x axis from 0 to 1, one per (low, high, count) bucket, and a vertical line per mark."""
    top = nice_top(max((n for _, _, n in buckets), default=0))

    def x(value: float) -> float:
        return round(LEFT + PLOT_WIDTH * value, 2)

    rects = []
    for low, high, count in buckets:
        if count > 0:
            y = _y(count, top)
            rects.append(Rect(x(low) + 1, y, round(x(high) - x(low) - 2, 2), round(_y(0, top) - y, 2), "bucket",
                              f"{low:.1f} to {high:.1f}: {count}"))
    lines, texts = _y_axis(top, _number)
    texts += [Text(x(i / 10), HEIGHT - 8, f"{i / 10:.1f}") for i in range(0, 11, 2)]
    for n, mark in enumerate(marks):
        lines.append(Line(x(mark.value), TOP, x(mark.value), TOP + PLOT_HEIGHT, mark.css,
                          f"{mark.name}: {mark.value:g}"))
        texts.append(Text(x(mark.value) - 4, TOP + 12 + 14 * n, f"{mark.name} {mark.value:g}", "end", mark.css))
    return Chart(title, desc, rects=tuple(rects), lines=tuple(lines), texts=tuple(texts))
