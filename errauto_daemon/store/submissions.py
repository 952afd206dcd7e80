"""Submissions and their events: recording, claiming, deciding, holding one while it is worked on.

Every state change checks the state it expects to leave (compare-and-set)
inside one transaction with its event row, so two processes can never both
claim or decide one submission; a change worth telling people about writes
its alert into the outbox in that same transaction, so an alert can neither
be lost nor sent for a change that did not happen.

A person may reject a submission while it is being validated: that records a
`cancel` event, which whoever validates it honours (`honour_cancel`). Before
an effect a cancel could not undo (moving the target, pushing a pull
request's branch) the validator records a `carry_out` event
(`begin_carrying_out`). Both are written only if the other is not there
already, in one transaction each, so whichever commits first wins: after a
cancel, nothing but its rejection can leave `validating`; after a
`carry_out`, the cancel is refused (until a `revalidate` event says the route
was not carried out after all).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from errauto_daemon import alerts
from errauto_daemon.domain import CheckStatus, Route, State
from errauto_daemon.errors import Cancelled, FatalError
from errauto_daemon.store.db import Backend, Reader, Transaction, placeholders
from errauto_daemon.store.outbox import insert_alert
from errauto_daemon.store.records import (
    DECIDED,
    FACT_FIELDS,
    TRANSITION_FIELDS,
    CheckRow,
    RejectHow,
    Submission,
    check_fields,
    check_state,
)
from errauto_daemon.store.sources import machine_name

CANCEL = "cancel"  # event: a person rejected the submission while it was being validated
CARRY_OUT = "carry_out"  # event: its validation began carrying out a merge or a pull request
REVALIDATE = "revalidate"  # event: the route was not carried out (the target moved); validating again

# What `reject` does: rejected at once, or a cancel its validator honours.
REJECTED_NOW: RejectHow = "rejected"
CANCEL_REQUESTED: RejectHow = "cancel requested"


def _submission_row(tx: Reader, sub_id: int) -> dict[str, Any]:
    row = tx.row("SELECT * FROM submissions WHERE id = ?", (sub_id,))
    if row is None:
        raise FatalError(f"no submission {sub_id}")
    return row


def _move(tx: Transaction, sub_id: int, expect: Sequence[State], to_state: State, now: float,
          detail: str | None, sets: str, args: tuple[Any, ...]) -> bool:
    """Move a submission to an undecided state (`queued`, `validating`) if it is in one of
    `expect`, setting `sets` too, and record the event; False if it was not."""
    row = tx.row("SELECT state FROM submissions WHERE id = ?", (sub_id,))
    if row is None or row["state"] not in expect:
        return False
    tx.execute(f"UPDATE submissions SET state = ?, updated_at = ?, decided_at = NULL, {sets} WHERE id = ?",
               (to_state, now, *args, sub_id))
    tx.execute("INSERT INTO events (submission_id, ts, kind, from_state, to_state, detail) "
               "VALUES (?, ?, 'state', ?, ?, ?)", (sub_id, now, row["state"], to_state, detail))
    return True
def _since_claim(reader: Reader, sub_id: int) -> list[dict[str, Any]]:
    """The cancel, carry-out and revalidate events of the current validation, oldest first."""
    return reader.rows(
        "SELECT kind, detail FROM events WHERE submission_id = ? AND kind IN (?, ?, ?) AND id > "
        "(SELECT COALESCE(MAX(id), 0) FROM events WHERE submission_id = ? AND kind = 'state' "
        f"AND to_state = '{State.VALIDATING}') ORDER BY id",
        (sub_id, CANCEL, CARRY_OUT, REVALIDATE, sub_id))


def _pending_cancel(reader: Reader, sub_id: int) -> str | None:
    """The reason of a cancel of the current validation, if a person asked for one."""
    for event in _since_claim(reader, sub_id):
        if event["kind"] == CANCEL:
            return str(event["detail"])
    return None


def _carrying_out(reader: Reader, sub_id: int) -> str | None:
    """What the current validation is carrying out (a merge, a pull request), if it began."""
    events = _since_claim(reader, sub_id)
    if events and events[-1]["kind"] == CARRY_OUT:
        return str(events[-1]["detail"])
    return None


def _transition(tx: Transaction, before: dict[str, Any], to_state: State, now: float,
                detail: str | None, fields: dict[str, Any]) -> dict[str, Any]:
    """Write a state change, its event and its alert; the fresh row."""
    sub_id = before["id"]
    sets = ", ".join(["state = ?", "updated_at = ?", "decided_at = ?", *(f"{k} = ?" for k in fields)])
    tx.execute(f"UPDATE submissions SET {sets} WHERE id = ?",
               (to_state, now, now if to_state in DECIDED else None, *fields.values(), sub_id))
    took = now - before["claimed_at"] if before["state"] == State.VALIDATING and before["claimed_at"] else None
    tx.execute("INSERT INTO events (submission_id, ts, kind, from_state, to_state, route, detail, duration) "
               "VALUES (?, ?, 'state', ?, ?, ?, ?, ?)",
               (sub_id, now, before["state"], to_state, fields.get("route"), detail, took))
    fresh = _submission_row(tx, sub_id)
    kind = alerts.alert_for(before["state"], to_state, fresh["route"],
                            alerts.decided_route(fresh["explanation"]))
    if kind is not None:
        insert_alert(tx, kind, now, fresh, detail, {"from_state": before["state"]})
    return fresh


class Submissions:
    _db: Backend

    def insert_submission(
        self, *, repo: str, target: str, source: str, source_detail: str | None, title: str,
        author: str | None, note: str | None, patch_sha256: str, dedup_key: str,
        state: State = State.QUEUED, reason: str | None = None, remote: str | None = None,
    ) -> tuple[Submission, bool]:
        """Record a submission, or return the existing one with the same dedup key: in the same
        repository, which is its push remote when it has one (`remote`: sent to two machines' clones,
        a patch is one submission), else its clone."""
        now = time.time()
        with self._db.transaction() as tx:
            if remote is not None:
                existing = tx.row("SELECT * FROM submissions WHERE remote = ? AND target = ? AND dedup_key = ? "
                                  "ORDER BY id LIMIT 1", (remote, target, dedup_key))
            else:
                existing = tx.row("SELECT * FROM submissions WHERE repo = ? AND target = ? AND dedup_key = ?",
                                  (repo, target, dedup_key))
            if existing is not None:
                tx.execute("INSERT INTO events (submission_id, ts, kind, detail) VALUES (?, ?, 'duplicate', ?)",
                           (existing["id"], now, f"{source}: {source_detail or ''}".strip(": ")))
                return Submission.from_row(existing), False
            state = check_state(state)
            route = Route.REJECTED if state == State.REJECTED else None
            sub_id = tx.insert(
                """INSERT INTO submissions (repo, remote, recorded_by, target, source, source_detail, title, author,
                       note, patch_sha256, dedup_key, state, route, reason, created_at, updated_at, decided_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (repo, remote, machine_name(), target, source, source_detail, title, author, note, patch_sha256, dedup_key,
                 state, route, reason, now, now, now if state in DECIDED else None))
            tx.execute("INSERT INTO events (submission_id, ts, kind, to_state, route, detail) "
                       "VALUES (?, ?, 'state', ?, ?, ?)", (sub_id, now, state, route, reason or source))
            row = _submission_row(tx, sub_id)
            kind = alerts.alert_for(None, state, row["route"], None)
            if kind is not None:
                insert_alert(tx, kind, now, row)
        return Submission.from_row(row), True

    def get(self, sub_id: int) -> Submission:
        row = self._db.read.row("SELECT * FROM submissions WHERE id = ?", (sub_id,))
        if row is None:
            raise FatalError(f"no submission {sub_id}")
        return Submission.from_row(row)

    def submissions(self, states: Sequence[State] | None = None, limit: int = 200,
                    repo: str | None = None) -> list[Submission]:
        query = "SELECT * FROM submissions"
        clauses: list[str] = []
        args: list[Any] = []
        if states:
            clauses.append(f"state IN ({placeholders(len(states))})")
            args += list(states)
        if repo:
            clauses.append("repo = ?")
            args.append(repo)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [Submission.from_row(r) for r in self._db.read.rows(query, args)]

    def queued_ids(self, limit: int = 100, repo: str | None = None) -> list[int]:
        """Queued submissions, oldest first (of one repository, with `repo`)."""
        if repo is None:
            return [r[0] for r in self._db.read.tuples(
                "SELECT id FROM submissions WHERE state = ? ORDER BY id LIMIT ?", (State.QUEUED, limit))]
        return [r[0] for r in self._db.read.tuples(
            "SELECT id FROM submissions WHERE state = ? AND repo = ? ORDER BY id LIMIT ?",
            (State.QUEUED, repo, limit))]

    def pr_open_due(self, checked_before: float, limit: int) -> list[int]:
        """Open pull requests not looked at since `checked_before`, the least recently looked at first."""
        return [r[0] for r in self._db.read.tuples(
            "SELECT id FROM submissions WHERE state = ? AND pr_number IS NOT NULL "
            "AND updated_at <= ? ORDER BY updated_at LIMIT ?", (State.PR_OPEN, checked_before, limit))]

    # -- state changes -------------------------------------------------------------

    def claim(self, sub_id: int, from_states: Sequence[State] = (State.QUEUED,),
              detail: str = "") -> Submission | None:
        """Move a submission to `validating` if it is in one of `from_states`."""
        now = time.time()
        with self._db.transaction() as tx:
            if not _move(tx, sub_id, from_states, State.VALIDATING, now, detail or None,
                         "attempts = attempts + 1, claimed_at = ?", (now,)):
                return None
            fresh = _submission_row(tx, sub_id)
        return Submission.from_row(fresh)

    def transition(self, sub_id: int, to_state: State, *, expect: Sequence[State] | None = None,
                   detail: str | None = None, **fields: Any) -> Submission:
        """Set the state (and other columns) and record the event, atomically.

        With `expect`, the change only happens if the current state is one of
        those; otherwise FatalError names the state found. A field that is
        not a column a decision sets is a TypeError, an unknown state a
        ValueError, before anything is written. Leaving `validating` after a
        person's cancel raises Cancelled: only `honour_cancel` may.
        """
        to_state = check_state(to_state)
        check_fields("transition", fields, TRANSITION_FIELDS)
        if fields.get("explanation") is not None:
            fields["explanation"] = json.dumps(fields["explanation"], sort_keys=True)
        now = time.time()
        with self._db.transaction() as tx:
            self._db.check_hold(tx, sub_id)
            before = _submission_row(tx, sub_id)
            if expect is not None and before["state"] not in expect:
                raise FatalError(f"submission {sub_id} is {before['state']}, not {' or '.join(expect)}")
            _refuse_if_cancelled(tx, before)
            fresh = _transition(tx, before, to_state, now, detail, fields)
        return Submission.from_row(fresh)

    def set_fields(self, sub_id: int, **fields: Any) -> None:
        """Record facts about a submission without changing its state (TypeError for any other field)."""
        check_fields("set_fields", fields, FACT_FIELDS)
        with self._db.transaction() as tx:
            sets = ", ".join(f"{k} = ?" for k in fields)
            tx.execute(f"UPDATE submissions SET {sets}, updated_at = ? WHERE id = ?",
                       (*fields.values(), time.time(), sub_id))

    def requeue(self, sub_id: int, detail: str, *, uncount_attempt: bool = False,
                expect: Sequence[State] = (State.VALIDATING,)) -> bool:
        """Put a submission back in the queue (it was interrupted, or resubmitted).

        `uncount_attempt`: the interrupted attempt was not the patch's doing,
        so it does not count towards the attempt limit. After a person's
        cancel it raises Cancelled (`honour_cancel` rejects it instead).
        """
        with self._db.transaction() as tx:
            self._db.check_hold(tx, sub_id)
            row = tx.row("SELECT id, state FROM submissions WHERE id = ?", (sub_id,))
            if row is not None and row["state"] in expect:
                _refuse_if_cancelled(tx, row)
            return _move(tx, sub_id, expect, State.QUEUED, time.time(), detail,
                         "merge_intent = NULL, attempts = attempts - ?", (1 if uncount_attempt else 0,))

    # -- a person's reject, and a validation's point of no return -------------------

    def reject(self, sub_id: int, reason: str, detail: str) -> tuple[Submission, RejectHow]:
        """A person rejects a submission: at once when it is queued or held for
        review (`REJECTED_NOW`); while it is being validated, a cancel its
        validator honours (`CANCEL_REQUESTED`). FatalError when it is decided
        already, or its validation began carrying out a merge or a pull request.
        """
        now = time.time()
        with self._db.transaction() as tx:
            before = _submission_row(tx, sub_id)
            state = before["state"]
            if state in (State.QUEUED, State.AWAITING_REVIEW):
                fresh = _transition(tx, before, State.REJECTED, now, detail, {"reason": reason})
                return Submission.from_row(fresh), REJECTED_NOW
            if state != State.VALIDATING:
                raise FatalError(f"submission {sub_id} is {state}, not awaiting_review, queued or validating")
            if _pending_cancel(tx, sub_id) is None:
                doing = _carrying_out(tx, sub_id)
                if doing is not None:
                    raise FatalError(f"submission {sub_id} was not rejected: its validation had begun "
                                     f"{doing} before the reject")
                tx.execute("INSERT INTO events (submission_id, ts, kind, detail) VALUES (?, ?, ?, ?)",
                           (sub_id, now, CANCEL, reason))
        return Submission.from_row(before), CANCEL_REQUESTED

    def cancel_requested(self, sub_id: int) -> str | None:
        """The reason a person gave for cancelling the current validation, if one did."""
        return _pending_cancel(self._db.read, sub_id)

    def honour_cancel(self, sub_id: int) -> Submission | None:
        """Reject a submission whose validation a person cancelled; None if none did."""
        now = time.time()
        with self._db.transaction() as tx:
            before = _submission_row(tx, sub_id)
            reason = _pending_cancel(tx, sub_id) if before["state"] == State.VALIDATING else None
            if reason is None:
                return None
            fresh = _transition(tx, before, State.REJECTED, now, f"validation cancelled: {reason}",
                                {"reason": reason, "merge_intent": None})
        return Submission.from_row(fresh)

    def begin_carrying_out(self, sub_id: int, what: str, **facts: Any) -> None:
        """Record that the validation now does what a cancel could not undo
        (`what`: "a merge", "a pull request"), with `facts` (the merge intent);
        Cancelled, and nothing written, if a person cancelled it first."""
        check_fields("begin_carrying_out", facts, FACT_FIELDS)
        now = time.time()
        with self._db.transaction() as tx:
            self._db.check_hold(tx, sub_id)
            reason = _pending_cancel(tx, sub_id)
            if reason is not None:
                raise Cancelled(reason)
            tx.execute("INSERT INTO events (submission_id, ts, kind, detail) VALUES (?, ?, ?, ?)",
                       (sub_id, now, CARRY_OUT, what))
            if facts:
                sets = ", ".join(f"{k} = ?" for k in facts)
                tx.execute(f"UPDATE submissions SET {sets}, updated_at = ? WHERE id = ?",
                           (*facts.values(), now, sub_id))

    @contextmanager
    def hold(self, sub_id: int) -> Iterator[bool]:
        """An exclusive hold on one submission while it is worked on, by any process of any
        machine sharing this store.

        It dies with its holder (a flock on SQLite, a server session's lock on
        PostgreSQL): a submission left `validating` whose hold can be taken
        was abandoned by a process that died. Yields False when another
        process holds it. Holders must re-read the state after taking it.
        """
        with self._db.hold(sub_id) as taken:
            yield taken

    # -- events ------------------------------------------------------------------------

    def add_event(self, sub_id: int | None, kind: str, detail: str | None = None, *,
                  alert: str | None = None) -> None:
        """Record an event; with `alert` (a kind in ALERT_KINDS), also that alert."""
        if alert is not None:
            alerts.level_of(alert)  # an unknown kind fails before anything is written
        now = time.time()
        with self._db.transaction() as tx:
            tx.execute("INSERT INTO events (submission_id, ts, kind, detail) VALUES (?, ?, ?, ?)",
                       (sub_id, now, kind, detail))
            if alert is not None:
                row = None
                if sub_id is not None:
                    row = tx.row("SELECT * FROM submissions WHERE id = ?", (sub_id,))
                insert_alert(tx, alert, now, row, detail)

    def events(self, sub_id: int) -> list[dict[str, Any]]:
        return self._db.read.rows("SELECT ts, kind, from_state, to_state, route, detail FROM events "
                                  "WHERE submission_id = ? ORDER BY id", (sub_id,))

    def mark_announced(self, sub_id: int, detail: str) -> None:
        self.add_event(sub_id, "announced", detail)

    # -- checks ----------------------------------------------------------------------

    def record_checks(self, sub_id: int, attempt: int, base_commit: str, rows: Sequence[CheckRow]) -> None:
        now = time.time()
        with self._db.transaction() as tx:
            tx.execute_many(
                """INSERT INTO checks (submission_id, attempt, name, status, exit_code, duration,
                       score, weight, detail, log_path, base_commit, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [(sub_id, attempt, r.name, r.status, r.exit_code, r.duration, r.score, r.weight,
                  r.detail, r.log_path, base_commit, now) for r in rows])

    def checks(self, sub_id: int, attempt: int | None = None) -> list[CheckRow]:
        """The checks of one attempt (by default the last one)."""
        if attempt is None:
            attempt = self._db.read.first("SELECT MAX(attempt) FROM checks WHERE submission_id = ?",
                                          (sub_id,))[0]
            if attempt is None:
                return []
        return [CheckRow(r["name"], r["attempt"], CheckStatus(r["status"]), r["exit_code"], r["duration"],
                         r["score"], r["weight"], r["detail"], r["log_path"], r["base_commit"])
                for r in self._db.read.rows(
                    "SELECT * FROM checks WHERE submission_id = ? AND attempt = ? ORDER BY id",
                    (sub_id, attempt))]

    def next_attempt(self, sub_id: int) -> int:
        """The number the next validation's checks of a submission are recorded under."""
        return int(self._db.read.first(
            "SELECT COALESCE(MAX(attempt), 0) + 1 FROM checks WHERE submission_id = ?", (sub_id,))[0])


def _refuse_if_cancelled(tx: Transaction, before: dict[str, Any]) -> None:
    """A person's cancel came first: the validation's own decision must not be recorded."""
    if before["state"] == State.VALIDATING:
        reason = _pending_cancel(tx, before["id"])
        if reason is not None:
            raise Cancelled(reason)
