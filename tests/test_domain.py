"""The domain's words: the strings stored and printed stay what they were."""
from __future__ import annotations

import json

import pytest

from errauto_daemon.domain import (
    DECIDED,
    FINAL,
    STATES,
    UNDECIDED,
    CheckStatus,
    PRState,
    Route,
    State,
    TestOutcome,
    optional,
)
from errauto_daemon.store.records import check_state


def test_members_are_the_stored_words() -> None:
    assert [s.value for s in STATES] == ["queued", "validating", "merged", "pr_open", "awaiting_review",
                                         "rejected", "failed"]
    assert [r.value for r in Route] == ["auto_merge", "pull_request", "review", "rejected"]
    assert [c.value for c in CheckStatus] == ["passed", "failed", "timeout", "missing", "cancelled"]
    assert [p.value for p in PRState] == ["open", "auto_merge", "auto_merge_failed", "merged", "closed"]


def test_a_member_prints_and_serialises_as_its_word() -> None:
    assert State("awaiting_review") is State.AWAITING_REVIEW and str.__eq__(State.AWAITING_REVIEW, "awaiting_review")
    assert str(State.AWAITING_REVIEW) == f"{State.AWAITING_REVIEW}" == "awaiting_review"
    assert f"{Route.AUTO_MERGE:>12}" == "  auto_merge"
    assert json.dumps({State.MERGED: [Route.REVIEW, CheckStatus.PASSED]}) == '{"merged": ["review", "passed"]}'


def test_decided_and_undecided_split_the_states() -> None:
    assert set(DECIDED) | set(UNDECIDED) == set(State) and not set(DECIDED) & set(UNDECIDED)
    assert set(FINAL) < set(DECIDED) and State.PR_OPEN not in FINAL


def test_an_unknown_word_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown state 'done'; one of queued, validating"):
        check_state("done")
    with pytest.raises(ValueError):
        Route("merge")
    assert check_state("merged") is State.MERGED
    assert optional(PRState, None) is None and optional(PRState, "closed") is PRState.CLOSED


def test_the_package_compares_with_members_not_bare_words() -> None:
    """A misspelt or stale word in a comparison silently never matches: name the member."""
    import re
    from pathlib import Path

    words = {m.value for kind in (State, Route, CheckStatus, TestOutcome) for m in kind} - {"open", "closed"}
    bare = re.compile(r"""\b(?:state|status|route|outcome)\s*(?:==|!=|in)\s*\(?\s*["'](\w+)["']""")
    package = Path(__file__).resolve().parents[1] / "errauto_daemon"
    found = [f"{path.relative_to(package)}:{n}: {line.strip()}"
             for path in sorted(package.rglob("*.py")) if path.name != "domain.py"
             for n, line in enumerate(path.read_text().splitlines(), 1)
             for m in bare.finditer(line) if m.group(1) in words]
    assert found == []
