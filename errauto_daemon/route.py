"""Where a validated patch goes: a pure decision from its confidence.

    review-only reasons (submodules, .gitmodules)     -> review
    confidence >= auto_merge_threshold, no gate hit   -> auto_merge
    confidence >= pr_threshold (or gated above it)    -> pull_request
                                                          (auto-merge enabled only with no gate hit)
    otherwise                                         -> review

Without GitHub configured the pull_request route degrades to review, and
says so. Patches that cannot be validated at all never get here: they are
rejected with their reason before any check runs.
"""
from __future__ import annotations

from dataclasses import dataclass

from errauto_daemon.domain import Route
from errauto_daemon.score import Confidence


@dataclass(frozen=True)
class Decision:
    route: Route
    reason: str
    pr_auto_merge: bool = False  # pull_request only: enable GitHub auto-merge


def decide(confidence: Confidence, *, github: bool) -> Decision:
    value = confidence.value
    am, pr = confidence.auto_merge_threshold, confidence.pr_threshold
    if confidence.review_only:
        return Decision(Route.REVIEW, "; ".join(confidence.review_only) + ": a person must review")
    if value >= am and not confidence.gates:
        return Decision(Route.AUTO_MERGE, f"confidence {value:.2f} >= auto-merge threshold {am:.2f}")
    if value >= pr:
        why = f"confidence {value:.2f} >= pull-request threshold {pr:.2f}"
        if value >= am:
            why = f"confidence {value:.2f} clears auto-merge, but {confidence.gates[0]}"
        if not github:
            return Decision(Route.REVIEW, f"{why}; GitHub not configured, so held for review")
        return Decision(Route.PULL_REQUEST, why, pr_auto_merge=not confidence.gates)
    return Decision(Route.REVIEW, f"confidence {value:.2f} is below the pull-request threshold {pr:.2f}")
