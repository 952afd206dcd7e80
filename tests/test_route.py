"""route.decide: where a patch goes, from its confidence alone."""
from __future__ import annotations

import pytest

from errauto_daemon.domain import Route
from errauto_daemon.route import Decision, decide
from errauto_daemon.score import Confidence

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

GATE = "tests must pass to auto-merge (failed)"


def confidence(value: float, *, gates: tuple[str, ...] = (), review_only: tuple[str, ...] = ()) -> Confidence:
    return Confidence(value=value, parts=(), gates=gates, review_only=review_only,
                      auto_merge_threshold=0.95, pr_threshold=0.8)


@pytest.mark.parametrize("value, gates, review_only, github, expected", [
    (0.97, (), (), True, Decision(Route.AUTO_MERGE, "confidence 0.97 >= auto-merge threshold 0.95")),
    (0.95, (), (), False, Decision(Route.AUTO_MERGE, "confidence 0.95 >= auto-merge threshold 0.95")),
    (0.9, (), (), True, Decision(Route.PULL_REQUEST, "confidence 0.90 >= pull-request threshold 0.80",
                                 pr_auto_merge=True)),
    (0.99, (GATE,), (), True, Decision(Route.PULL_REQUEST, f"confidence 0.99 clears auto-merge, but {GATE}")),
    (0.8, (GATE,), (), True, Decision(Route.PULL_REQUEST, "confidence 0.80 >= pull-request threshold 0.80")),
    (0.9, (), (), False, Decision(
        Route.REVIEW, "confidence 0.90 >= pull-request threshold 0.80; GitHub not configured, so held for review")),
    (0.99, (GATE,), (), False, Decision(
        Route.REVIEW, f"confidence 0.99 clears auto-merge, but {GATE}; GitHub not configured, so held for review")),
    (0.79, (), (), True, Decision(Route.REVIEW, "confidence 0.79 is below the pull-request threshold 0.80")),
    (1.0, (), ("a submodule changes", ".gitmodules changes"), True,
     Decision(Route.REVIEW, "a submodule changes; .gitmodules changes: a person must review")),
])
def test_decide(value: float, gates: tuple[str, ...], review_only: tuple[str, ...], github: bool,
                expected: Decision) -> None:
    assert decide(confidence(value, gates=gates, review_only=review_only), github=github) == expected
