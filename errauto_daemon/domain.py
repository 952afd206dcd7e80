"""The words errauto's records use, as types.

Each is a `StrEnum`: a member is the very string the database, the `--json`
documents and the alerts have always held (`State.MERGED == "merged"`), so
nothing stored or printed changes; the code names a member instead of
spelling a string, and a misspelt one is an AttributeError, not a silent
"no match". Reading a value from outside (a row, the command line) goes
through the enum's constructor, which refuses an unknown word.

A leaf module: it imports nothing of errauto (tests/test_layout.py).
"""
from __future__ import annotations

import sys
from enum import Enum
from typing import TypeVar

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # the same behaviour: str() and format() give the value itself
    class StrEnum(str, Enum):
        def __str__(self) -> str:
            return str.__str__(self)

        def __format__(self, spec: str) -> str:
            return str.__format__(self, spec)

__all__ = ["DECIDED", "FAILING", "FINAL", "STATES", "UNDECIDED", "CheckStatus", "PRState", "Route", "State",
           "StrEnum", "TestOutcome", "optional"]


class State(StrEnum):
    """Where a submission is. `queued` and `validating` are undecided; the
    rest are decisions, of which `merged`, `rejected` and `failed` are final."""

    QUEUED = "queued"
    VALIDATING = "validating"
    MERGED = "merged"
    PR_OPEN = "pr_open"
    AWAITING_REVIEW = "awaiting_review"
    REJECTED = "rejected"
    FAILED = "failed"


STATES: tuple[State, ...] = tuple(State)
UNDECIDED: tuple[State, ...] = (State.QUEUED, State.VALIDATING)
DECIDED: tuple[State, ...] = tuple(s for s in State if s not in UNDECIDED)
FINAL: tuple[State, ...] = (State.MERGED, State.REJECTED, State.FAILED)


class Route(StrEnum):
    """Where a decision sent a patch (`route.decide`; `rejected` for one that
    could not be validated at all)."""

    AUTO_MERGE = "auto_merge"
    PULL_REQUEST = "pull_request"
    REVIEW = "review"
    REJECTED = "rejected"


class CheckStatus(StrEnum):
    """How one check ended."""

    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"  # killed at its time limit
    MISSING = "missing"  # its program was not found, or it did not run
    CANCELLED = "cancelled"  # stopped because errauto was stopping or the submission was withdrawn


# The statuses that count against a patch (a cancelled check says nothing about it).
FAILING: tuple[CheckStatus, ...] = (CheckStatus.FAILED, CheckStatus.TIMEOUT, CheckStatus.MISSING)


class TestOutcome(StrEnum):
    """How one test ended, as its runner reported it (a JUnit XML report)."""

    __test__ = False  # a word, not a test class, whatever pytest thinks of the name

    PASSED = "passed"
    FAILED = "failed"  # an assertion failed (or a strict xfail passed)
    ERROR = "error"  # it could not run: its setup or teardown failed, or collecting it did
    SKIPPED = "skipped"
    XFAILED = "xfailed"  # failed as it was marked to


class PRState(StrEnum):
    """What errauto knows of a submission's pull request."""

    OPEN = "open"  # open, auto-merge off (a gate: a person must merge it)
    AUTO_MERGE = "auto_merge"  # open, GitHub merges it when its requirements pass
    AUTO_MERGE_FAILED = "auto_merge_failed"  # open, auto-merge wanted but could not be enabled
    MERGED = "merged"
    CLOSED = "closed"  # closed without merging


E = TypeVar("E", bound=StrEnum)


def optional(kind: type[E], value: str | None) -> E | None:
    """`kind(value)`, or None for None (a nullable column)."""
    return None if value is None else kind(value)
