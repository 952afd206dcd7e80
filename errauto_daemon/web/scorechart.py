"""The score as a picture: each check's part of the confidence on one bar, against the two thresholds.

Pure: a stored explanation (`Confidence.to_json`, what `queue show` reads)
in, the shapes to draw and their words out; the template draws them as an
inline SVG with classes only (the Content-Security-Policy allows no inline
style). The bar is the whole score, 0 to 1: first what each check earned
(its weight times its score), in the order of the configuration, so the
filled length is the confidence; then what each check lost. A line marks
each threshold: auto-merge above the bar, pull request below it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WIDTH = 640  # the drawing's width, in SVG units
HEIGHT = 84
PAD = 12  # left and right of the bar, so a threshold at 0 or 1 and its label still show
BAR_TOP = 28
BAR_HEIGHT = 24
PALETTE = 6  # earned parts cycle through classes part-0 .. part-5
THRESHOLDS = (("auto_merge", "auto-merge"), ("pull_request", "pull request"))


@dataclass(frozen=True)
class Part:
    """One check's share of the score, as stored."""

    index: int
    check: str
    status: str
    weight: float
    contribution: float
    detail: str

    @property
    def lost(self) -> float:
        return max(0.0, self.weight - self.contribution)

    @property
    def words(self) -> str:
        return f"{self.check} ({self.status}): {self.contribution:.2f} of {self.weight:.2f}"

    @property
    def css(self) -> str:
        """Its colour in the legend: what it earned, or, having earned nothing, what it lost."""
        return self.earned_css if self.contribution > 0 else self.lost_css

    @property
    def earned_css(self) -> str:
        return f"earned part-{self.index % PALETTE}"

    @property
    def lost_css(self) -> str:
        return f"lost status-{self.status}"


@dataclass(frozen=True)
class Segment:
    part: Part
    earned: bool  # what the check earned, or what it lost
    x: float
    width: float

    @property
    def css(self) -> str:
        return self.part.earned_css if self.earned else self.part.lost_css

    @property
    def words(self) -> str:
        value = self.part.contribution if self.earned else self.part.lost
        return f"{self.part.check} {'earned' if self.earned else 'lost'} {value:.2f} ({self.part.status})"


@dataclass(frozen=True)
class Threshold:
    key: str  # "auto_merge" or "pull_request", as stored
    name: str
    value: float
    x: float
    label_y: float
    anchor: str  # where its label sits against the line: "start", "middle" or "end"
    cleared: bool

    @property
    def words(self) -> str:
        return f"{self.name} needs {self.value:.2f}"


@dataclass(frozen=True)
class ScoreChart:
    confidence: float
    parts: tuple[Part, ...]
    segments: tuple[Segment, ...]
    thresholds: tuple[Threshold, ...]
    confidence_x: float
    width: int = WIDTH
    height: int = HEIGHT
    bar_top: int = BAR_TOP
    bar_height: int = BAR_HEIGHT
    track_x: int = PAD  # the bar's whole length, 0 to 1
    track_width: int = WIDTH - 2 * PAD

    @property
    def lost(self) -> float:
        return sum(p.lost for p in self.parts)

    @property
    def title(self) -> str:
        return f"confidence {self.confidence:.2f} of 1; " + "; ".join(t.words for t in self.thresholds)

    @property
    def desc(self) -> str:
        return "; ".join(p.words for p in self.parts)


def x_of(value: float) -> float:
    """Where a score between 0 and 1 lies on the bar."""
    return round(PAD + min(1.0, max(0.0, value)) * (WIDTH - 2 * PAD), 2)


def chart(explanation: Mapping[str, Any] | None) -> ScoreChart | None:
    """The picture of a stored explanation, or None when it has no parts to draw."""
    if not explanation or not explanation.get("parts"):
        return None
    parts = tuple(_part(i, raw) for i, raw in enumerate(explanation["parts"]))
    segments: list[Segment] = []
    at = 0.0
    for earned in (True, False):
        for part in parts:
            value = part.contribution if earned else part.lost
            if value > 0:
                segments.append(Segment(part, earned, x_of(at), round(x_of(at + value) - x_of(at), 2)))
                at += value
    confidence = float(explanation.get("confidence", 0.0))
    stored = explanation.get("thresholds", {})
    marks = tuple(_threshold(key, name, float(stored[key]), confidence, above=(key == "auto_merge"))
                  for key, name in THRESHOLDS if key in stored)
    return ScoreChart(confidence, parts, tuple(segments), marks, x_of(confidence))


def _part(index: int, raw: Mapping[str, Any]) -> Part:
    return Part(index, str(raw.get("check", "?")), str(raw.get("status", "?")), float(raw.get("weight", 0.0)),
                float(raw.get("contribution", 0.0)), str(raw.get("detail", "")))


def _threshold(key: str, name: str, value: float, confidence: float, *, above: bool) -> Threshold:
    anchor = "end" if value > 0.8 else "start" if value < 0.2 else "middle"
    label_y = BAR_TOP - 10 if above else BAR_TOP + BAR_HEIGHT + 22
    return Threshold(key, name, value, x_of(value), label_y, anchor, confidence >= value)
