"""A person's decisions on a submission: approve, reject, validate again.

What `errauto queue approve / reject / retry` and the review pages of
`errauto web` both call, so the rules and the records are the same
wherever a person decides.
"""
from __future__ import annotations

import getpass

from errauto_daemon import inbox, progress
from errauto_daemon.errors import FatalError
from errauto_daemon.store import CANCEL_REQUESTED, Store, Submission
from errauto_daemon.validate import Validator, wait_decided

REJECT_WAIT = 30.0  # seconds a reject waits for a cancelled validation to stop


def who() -> str:
    """The name a person's decision is recorded under: the user running errauto."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "someone"


def approved(store: Store, sub_id: int, who: str, *, force: bool) -> Submission:
    """A person approved `sub_id`: merged (or its pull request opened), its inbox files settled."""
    sub = Validator(store).approve(sub_id, who, force=force)
    inbox.settle(store, sub)
    return sub


def rejected(store: Store, sub_id: int, reason: str, who: str, *, wait: float = REJECT_WAIT) -> Submission:
    """A person rejected `sub_id` for `reason`: rejected now, or once its validation stopped.

    A submission being validated (by the daemon, `errauto apply` or `queue process`, in any
    process) gets a cancel request in the store: its validator stops, kills the running check, and
    records the rejection. Once the request is recorded, the submission can no longer be merged or
    opened as a pull request; if its merge or pull request began first, the reject is refused
    (FatalError) with how it ended.
    """
    try:
        sub, how = store.reject(sub_id, f"rejected by {who}: {reason}", f"rejected by {who}")
    except FatalError as exc:
        raise FatalError(_too_late(store, sub_id, str(exc), wait)) from None
    if how == CANCEL_REQUESTED:
        sub = _stop_validation(store, sub_id, wait)
    inbox.settle(store, sub)
    return sub


def _stop_validation(store: Store, sub_id: int, wait: float) -> Submission:
    """After a cancel request: the rejected submission, once its validator has stopped."""
    with store.hold(sub_id) as held:
        if held:  # nobody is validating it (the process doing so died): reject it here
            return store.honour_cancel(sub_id) or store.get(sub_id)
    return wait_decided(store, sub_id, timeout=wait)


def _too_late(store: Store, sub_id: int, refusal: str, wait: float) -> str:
    """The refusal, with how the submission ended if its merge or pull request was under way."""
    if "before the reject" not in refusal:
        return refusal
    sub = wait_decided(store, sub_id, timeout=wait)
    return f"{refusal}; it is {sub.state} now" + (f" ({sub.reason})" if sub.reason else "")


def retried(store: Store, sub_id: int, who: str, *, force: bool,
            observer: progress.Progress | None = None) -> Submission:
    """A person asked for `sub_id` to be validated again now (without the cache), and decided."""
    sub = Validator(store, use_cache=False, progress=observer).retry(sub_id, who, force=force)
    inbox.settle(store, sub)
    return sub
