"""Confidence: a weighted, explained score for one validated patch.

Pure: check outcomes and configuration in, a `Confidence` out; no I/O.

Each configured check scores in [0, 1]: passed 1; failed, timed out or
missing 0. A coverage check scores 1 when coverage did not drop below the
base's, and loses score linearly with the drop, reaching 0 at `tolerance`
percentage points. The confidence is the weighted mean over the configured
checks. Gates are listed separately: they do not change the number, they
limit where the patch may go.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from errauto_daemon.checks import CheckResult
from errauto_daemon.config import CheckConfig, Config
from errauto_daemon.domain import CheckStatus


@dataclass(frozen=True)
class Part:
    name: str
    weight: float  # normalised: the parts' weights sum to 1
    score: float
    status: CheckStatus
    detail: str
    duration: float

    @property
    def contribution(self) -> float:
        return self.weight * self.score

    @property
    def cost(self) -> float:
        return self.weight * (1.0 - self.score)


@dataclass(frozen=True)
class Confidence:
    value: float
    parts: tuple[Part, ...]
    gates: tuple[str, ...]  # why the patch may not auto-merge
    review_only: tuple[str, ...]  # why nothing but a person may decide
    auto_merge_threshold: float
    pr_threshold: float
    notes: tuple[str, ...] = ()
    # The gates this patch hit (a gate check that did not pass, protected
    # paths), unlike the configuration's own ("no tests check"): approving
    # a patch held by one of these takes `queue approve --force`.
    gates_hit: tuple[str, ...] = ()

    @property
    def margins(self) -> dict[str, float]:
        return {
            "auto_merge": round(self.value - self.auto_merge_threshold, 4),
            "pull_request": round(self.value - self.pr_threshold, 4),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "confidence": round(self.value, 4),
            "parts": [
                {"check": p.name, "weight": round(p.weight, 4), "score": round(p.score, 4),
                 "contribution": round(p.contribution, 4), "status": p.status, "detail": p.detail,
                 "duration": round(p.duration, 3)}
                for p in self.parts
            ],
            "gates": list(self.gates),
            "gates_hit": list(self.gates_hit),
            "review_only": list(self.review_only),
            "thresholds": {"auto_merge": self.auto_merge_threshold, "pull_request": self.pr_threshold},
            "margins": self.margins,
            "notes": list(self.notes),
            "summary": self.summary(),
        }

    def summary(self) -> str:
        """One line, e.g. "0.91: coverage -2.0% cost 0.04; auto-merge needs 0.95"."""
        text = f"{self.value:.2f}"
        costs = [f"{p.name} {p.detail} cost {p.cost:.2f}" for p in self.parts if p.cost > 0.0005]
        if costs:
            text += ": " + ", ".join(costs)
        if self.value < self.auto_merge_threshold:
            text += f"; auto-merge needs {self.auto_merge_threshold:.2f}"
        if self.value < self.pr_threshold:
            text += f"; a pull request needs {self.pr_threshold:.2f}"
        return text


def check_score(check: CheckConfig, result: CheckResult, baseline: float | None) -> tuple[float, str]:
    """A check's score and how to describe it."""
    if result.status != CheckStatus.PASSED:
        return 0.0, result.detail
    if check.kind == "coverage" and result.value is not None:
        if baseline is None:
            return 1.0, f"{result.value:.1f}% (no base coverage to compare)"
        drop = baseline - result.value
        if drop <= 0:
            return 1.0, f"{result.value:.1f}% ({-drop:+.1f}% vs base)"
        return max(0.0, 1.0 - drop / check.tolerance), f"-{drop:.1f}%"
    return 1.0, result.detail


def compute(
    config: Config,
    results: Sequence[CheckResult],
    *,
    baselines: Mapping[str, float | None] | None = None,
    protected: Sequence[str] = (),
    review_only: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> Confidence:
    by_name = {r.name: r for r in results}
    total_weight = sum(c.weight for c in config.checks)
    parts: list[Part] = []
    failed: list[str] = []  # gate checks that did not pass
    for check in config.checks:
        result = by_name.get(check.name)
        if result is None:
            score, detail, status, duration = 0.0, "did not run", CheckStatus.MISSING, 0.0
        else:
            score, detail = check_score(check, result, (baselines or {}).get(check.name))
            status, duration = result.status, result.duration
        weight = check.weight / total_weight if total_weight > 0 else 0.0
        parts.append(Part(check.name, weight, score, status, detail, duration))
        if check.gate and status != CheckStatus.PASSED:
            failed.append(f"{check.name} must pass to auto-merge ({detail})")
    value = sum(p.contribution for p in parts)
    untested = [] if any(c.gate for c in config.checks) else [
        "no tests check is configured: auto-merge needs one"]
    touches = []
    if protected:
        shown = ", ".join(protected[:3]) + (f" and {len(protected) - 3} more" if len(protected) > 3 else "")
        touches.append(f"touches protected paths ({shown}): never merged without a person")
    return Confidence(
        value=round(value, 6),
        parts=tuple(parts),
        gates=(*failed, *untested, *touches),
        review_only=tuple(review_only),
        auto_merge_threshold=config.auto_merge_threshold,
        pr_threshold=config.pr_threshold,
        notes=tuple(notes),
        gates_hit=(*failed, *touches),
    )
