"""The worker threads, and following pull requests: where the daemon decides.

The main thread feeds queued submissions to the workers (`Workers.feed`),
each id once while it is in flight; each worker validates with its own
`Validator` (its own database connection, its own worktree slot). Every
path that decides a submission here hands it to `inbox.settle`, which moves
the inbox files taken for it to the folder of its fate.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from errauto_daemon import checks, github, inbox
from errauto_daemon import config as config_mod
from errauto_daemon.daemon.control import exit_reserve, join_until
from errauto_daemon.domain import State
from errauto_daemon.errors import FatalError
from errauto_daemon.progress import LogProgress
from errauto_daemon.repo import open_repo
from errauto_daemon.store import Store, Submission
from errauto_daemon.validate import Validator

log = logging.getLogger("errauto")

MAX_ATTEMPTS = 3  # validations of one submission interrupted or crashed before it fails
FOLLOW_EVERY = 60.0  # seconds between looks at open pull requests
# Of the stop grace, what killing the running checks (SIGTERM, then SIGKILL
# after checks.KILL_GRACE) and requeueing their submissions needs.
CANCEL_RESERVE = checks.KILL_GRACE + 2.0


class Workers:
    """The pool of worker threads and the queue that feeds them."""

    def __init__(self, *, stopping: threading.Event, wanted: int | None = None,
                 intact: Callable[[], bool] = lambda: True) -> None:
        self.stopping = stopping  # no new work
        self.wanted = wanted
        self.intact = intact  # whether the state database is still the daemon's (checked before each decision)
        self.cancel = threading.Event()  # running checks are killed
        self.work_q: queue.Queue[int] = queue.Queue()
        self.in_flight: set[int] = set()
        self.in_flight_lock = threading.Lock()

    def count(self, store: Store) -> int:
        """As many as asked for, else the most any registered repository's configuration wants."""
        if self.wanted:
            return self.wanted
        counts = []
        for root in store.repos():
            try:
                counts.append(config_mod.load(open_repo(root)).workers)
            except FatalError:
                continue
        return max(counts, default=config_mod.Config.workers)

    def feed(self, store: Store) -> None:
        """Hand every queued submission not already in flight to the workers."""
        for sub_id in store.queued_ids(limit=1000):
            with self.in_flight_lock:
                if sub_id in self.in_flight:
                    continue
                self.in_flight.add(sub_id)
            log.debug("submission %d handed to the workers", sub_id)
            self.work_q.put(sub_id)

    def finish(self, threads: Sequence[threading.Thread], deadline: float, grace: float) -> None:
        """Let running validations finish, then cancel them in time to stop by `deadline`.

        Cancelled validations kill their checks' process groups and go back to
        the queue (failed once interrupted MAX_ATTEMPTS times).
        """
        join_until(threads, deadline - min(CANCEL_RESERVE, grace * 0.75))
        if any(t.is_alive() for t in threads):
            log.info("grace period nearly over: cancelling running checks")
            self.cancel.set()
            join_until(threads, deadline - exit_reserve(grace))

    def loop(self) -> None:
        """One worker thread: validate and decide what it is handed until stopping."""
        store = Store()
        validator = Validator(store, cancel=self.cancel, retry_internal=MAX_ATTEMPTS,
                              progress=LogProgress(logging.getLogger("errauto.worker")))
        while not self.stopping.is_set():
            try:
                sub_id = self.work_q.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                if self.stopping.is_set() or not self.intact():
                    break
                _decide(validator, store, sub_id)
            finally:
                with self.in_flight_lock:
                    self.in_flight.discard(sub_id)
        validator.release()
        store.close()


class JobSlots:
    """On a database machines share: the jobs Procrastinate hands this daemon, each decided by one
    of its validators (one per slot: their worktree slots and open repositories are reused)."""

    def __init__(self, workers: Workers, store: Store, slots: int) -> None:
        self.workers = workers
        self.store = store
        self.free: queue.Queue[Validator] = queue.Queue()
        for _ in range(slots):
            self.free.put(Validator(store, cancel=workers.cancel, retry_internal=MAX_ATTEMPTS,
                                    progress=LogProgress(logging.getLogger("errauto.worker"))))

    def decide(self, sub_id: int) -> bool:
        """Run one job: decide `sub_id` here; False if this machine has no clone of its repository.
        A submission a killed worker left `validating` is recovered first (its job was put back)."""
        if self.workers.stopping.is_set() or not self.workers.intact():
            return False
        validator = self.free.get()
        log.debug("submission %d handed to the workers (a job)", sub_id)
        with self.workers.in_flight_lock:
            self.workers.in_flight.add(sub_id)
        try:
            sub = self.store.get(sub_id)
            try:
                validator.local_root(sub)
            except FatalError as exc:
                log.info("submission %d: %s; left for another machine", sub_id, exc)
                return False
            if sub.state == State.VALIDATING:
                recovered = validator.recover_submission(sub_id, MAX_ATTEMPTS)
                if recovered is not None:
                    log.info("recovered submission %d: %s", sub_id, recovered.state)
                    inbox.settle(self.store, recovered)
            _decide(validator, self.store, sub_id)
            return True
        finally:
            with self.workers.in_flight_lock:
                self.workers.in_flight.discard(sub_id)
            self.free.put(validator)

    def close(self) -> None:
        while not self.free.empty():
            self.free.get().release()


def _decide(validator: Validator, store: Store, sub_id: int) -> None:
    try:
        log.debug("taking submission %d (validating it unless another process holds it)", sub_id)
        sub = validator.process(sub_id)
        log.info("submission %d: %s%s", sub.id, sub.state, f" ({sub.reason})" if sub.reason else "")
        inbox.settle(store, sub)
    except FatalError as exc:
        log.warning("submission %d: %s", sub_id, exc)
    except Exception:
        log.exception("submission %d: internal error", sub_id)


def recover(store: Store, *, announce: bool = False) -> list[Submission]:
    """Decide what a killed process left validating (requeued, or merged when its
    merge reached the target) and settle its inbox files; the submissions recovered."""
    recovered = Validator(store).recover(MAX_ATTEMPTS)
    for sub in recovered:
        if announce:
            log.info("recovered submission %d: %s", sub.id, sub.state)
        inbox.settle(store, sub)
    return recovered


def follow_loop(stopping: threading.Event) -> None:
    """Record pull requests merged or closed on GitHub, at a bounded rate.

    Its own thread: a GitHub call may wait out a rate limit, and neither
    intake nor the heartbeat may wait with it.
    """
    store = Store()
    while not stopping.wait(FOLLOW_EVERY):
        try:
            decided = github.follow_open_pull_requests(
                store, limit=20, min_interval=FOLLOW_EVERY,
                on_decided=lambda sub: inbox.settle(store, sub))
            if decided:
                log.info("%d pull requests were merged or closed on GitHub", decided)
        except Exception:
            log.exception("following pull requests failed")
    store.close()
