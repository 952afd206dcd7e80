"""What validating a patch found: an immutable result, handed from
validation to the route and its carrying out."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pygit2

from errauto_daemon.checks import CheckResult
from errauto_daemon.evidence.record import NONE, Evidence
from errauto_daemon.patchfile import Patch
from errauto_daemon.route import Decision
from errauto_daemon.score import Confidence


@dataclass(frozen=True)
class Validation:
    base: str  # the target's tip the patch was applied to
    patch: Patch
    trees: tuple[pygit2.Oid, ...]  # one per commit of the patch, the last one the result
    results: tuple[CheckResult, ...]
    confidence: Confidence
    attempt: int
    timings: Mapping[str, float]  # seconds per phase
    evidence: Evidence = NONE  # per-test, test-code and changed-line evidence

    @property
    def result_tree(self) -> str:
        return str(self.trees[-1])

    def explanation(self, decision: Decision | None = None, **timings: float) -> dict[str, Any]:
        """What is recorded (and shown) about this validation: the confidence's
        parts, the base, the attempt, its timings plus `timings` spent
        carrying it out, and the decision when there is one."""
        out = self.confidence.to_json()
        out["base"] = self.base
        out["attempt"] = self.attempt
        out["timings"] = {**self.timings, **timings}
        out["evidence"] = self.evidence.to_json()
        if decision is not None:
            out["route"] = decision.route
            out["reason"] = decision.reason
        return out
