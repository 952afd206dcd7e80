"""Validations as jobs, on a state database machines share (PostgreSQL).

Procrastinate keeps the queue in the same database, so a submission and its
job are on one server and one backup. What each part does:

- Intake on any machine records the submission, then `enqueue`s its job.
  The queueing lock `sub-<id>` keeps one waiting job per submission.
- Every daemon runs a `Runner`: a Procrastinate worker with one slot per
  worker thread. A job is decided by a `Validator` from the daemon's pool,
  as the daemon's own queue does on a SQLite state: the submission's hold,
  its claim and its decision are the store's, so a job that runs twice
  decides once.
- `sweep` (every daemon, every beat): a queued submission with no waiting or
  running job gets one. That catches a job lost between the record and its
  job (an intake killed there, a server restarted), and a submission queued
  again (retried, interrupted).
- `retry_stalled`: a running job whose worker stopped sending heartbeats (a
  killed daemon, a machine gone) is put back. Its submission, left
  `validating` with its hold free, is recovered when the job runs again:
  requeued, or recorded as merged when its merge had reached the target.

A job runs on a machine with a clone of its repository (`Validator.local_root`):
a machine without one puts the job back for a little later, for another.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from errauto_daemon.store import Store

if TYPE_CHECKING:
    import procrastinate

log = logging.getLogger("errauto")

QUEUE = "errauto"
TASK = "errauto.validate"
HEARTBEAT = 2.0  # seconds between a worker's heartbeats in the jobs' table
STALLED_AFTER = 10.0  # seconds without a heartbeat before a worker's running jobs are put back
ELSEWHERE_AGAIN = 10  # seconds before a job this machine cannot run is offered again
RESTART_AFTER = 1.0  # seconds before a worker that lost the server starts again


def queueing_lock(sub_id: int) -> str:
    return f"sub-{sub_id}"


def _worker_app(url: str, slots: int) -> procrastinate.App:
    """A Procrastinate app for a worker: its own pool (the slots, the listener, the heartbeat)."""
    import procrastinate

    connector = procrastinate.PsycopgConnector(conninfo=url, min_size=1, max_size=slots + 3,
                                               kwargs={"application_name": "errauto:jobs"})
    return procrastinate.App(connector=connector)


class _StoreConnection:
    """Procrastinate's pool, as far as enqueueing uses one: the store's own connection of this
    thread. Enqueueing opens no pool, no thread and no connection of its own."""

    def __init__(self, store: Store) -> None:
        self.store = weakref.ref(store)  # the cache below must not keep its key alive

    @contextmanager
    def connection(self) -> Iterator[Any]:
        store = self.store()
        if store is None:
            raise RuntimeError("the store that queued this job is gone")
        yield store.server_connection()


_enqueuers: weakref.WeakKeyDictionary[Store, procrastinate.App] = weakref.WeakKeyDictionary()
_enqueuers_lock = threading.Lock()


def _enqueuer(store: Store) -> procrastinate.App:
    with _enqueuers_lock:
        app = _enqueuers.get(store)
        if app is None:
            import procrastinate

            connector = procrastinate.SyncPsycopgConnector()
            connector.open(_StoreConnection(store))  # type: ignore[arg-type]
            app = _enqueuers[store] = procrastinate.App(connector=connector)
        return app


def enqueue(store: Store, sub_id: int, *, delay: int = 0) -> bool:
    """Queue the validation of `sub_id` for any machine; whether a job was added (False: one waits
    already, or the server refused: `sweep` adds it later). Never raises: the submission is
    recorded, and its job is only how it gets to a worker soonest."""
    from procrastinate.exceptions import AlreadyEnqueued

    try:
        _enqueuer(store).configure_task(
            TASK, queue=QUEUE, queueing_lock=queueing_lock(sub_id),
            schedule_in={"seconds": delay} if delay else None).defer(sub_id=sub_id)
        return True
    except AlreadyEnqueued:
        return False
    except Exception as exc:  # the server went away, or its schema has no jobs yet
        log.warning("submission %d: its job could not be queued on %s (%s); the next sweep queues it",
                    sub_id, store, type(exc).__name__)
        return False


def sweep(store: Store) -> int:
    """Give every queued submission without a job one; how many were given."""
    return sum(enqueue(store, sub_id) for sub_id in store.jobless_queued(TASK))


# -- the worker -----------------------------------------------------------------------------

class Runner:
    """This daemon's Procrastinate worker, on a thread of its own with its own event loop.

    `decide(sub_id)` runs on Procrastinate's threads, at most `slots` at a
    time; it returns whether the job was done here (False: put back for
    another machine).
    """

    def __init__(self, store: Store, slots: int, decide: Callable[[int], bool], *, name: str) -> None:
        self.store = store
        self.url = url = str(store.where)
        self.slots = slots
        self.decide = decide
        self.name = name
        self.app = _worker_app(url, slots)
        self.app.task(name=TASK, queue=QUEUE, pass_context=False)(self._job)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._running = 0  # jobs running now
        self._running_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="jobs", daemon=True)
        self.failed: BaseException | None = None

    def _job(self, sub_id: int) -> None:
        with self._running_lock:
            self._running += 1
        try:
            if not self.decide(int(sub_id)):
                enqueue(self.store, int(sub_id), delay=ELSEWHERE_AGAIN)
        finally:
            with self._running_lock:
                self._running -= 1

    def start(self) -> None:
        self.thread.start()
        self._started.wait(30)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by the daemon, which stops taking jobs
            self.failed = exc
            log.exception("the job worker stopped")
        finally:
            loop.close()

    async def _main(self) -> None:
        """Run the worker; when it fails (the server restarted under it), open it again shortly."""
        self._task = asyncio.current_task()
        self._started.set()
        while not self._stopping.is_set():
            try:
                async with self.app.open_async():
                    if self._stopping.is_set():  # asked to stop while the pool opened
                        return
                    await self.app.run_worker_async(
                        queues=[QUEUE], concurrency=self.slots, name=self.name, wait=True,
                        install_signal_handlers=False, listen_notify=True, fetch_job_polling_interval=2.0,
                        update_heartbeat_interval=HEARTBEAT, stalled_worker_timeout=STALLED_AFTER,
                        delete_jobs="successful")
                return
            except asyncio.CancelledError:
                return
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("the job worker lost the server (%s); starting it again", type(exc).__name__)
                self.app = _worker_app(self.url, self.slots)
                self.app.task(name=TASK, queue=QUEUE, pass_context=False)(self._job)
                try:
                    await asyncio.sleep(RESTART_AFTER)
                except asyncio.CancelledError:
                    return

    def stop(self, timeout: float) -> None:
        """Take no new job; wait up to `timeout` for the running ones (the daemon cancels their checks).
        A cancel that lands before the worker runs (the pool opening) is seen by the flag."""
        self._stopping.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._cancel, True)
            except RuntimeError:
                pass  # the loop ended meanwhile
        self.thread.join(timeout)

    def _cancel(self, first: bool = False) -> None:
        """On the loop: cancel the worker, and again each second while no job runs. Procrastinate
        then lets running jobs finish; a cancel lost in its start (Python before 3.12 can drop one
        in `asyncio.wait_for`) would leave it running past the daemon's stop."""
        task, loop = self._task, self._loop
        if task is None or loop is None or task.done():
            return
        with self._running_lock:
            idle = self._running == 0
        if first or idle:
            task.cancel()
        loop.call_later(1.0, self._cancel)

    def retry_stalled(self) -> int:
        """Put back the running jobs of workers that stopped sending heartbeats; how many."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self.thread.is_alive():
            return 0
        future = asyncio.run_coroutine_threadsafe(self._retry_stalled(), loop)
        return future.result(timeout=30)

    async def _retry_stalled(self) -> int:
        manager = self.app.job_manager
        stalled = list(await manager.get_stalled_jobs(queue=QUEUE, task_name=TASK,
                                                      seconds_since_heartbeat=STALLED_AFTER))
        for job in stalled:
            log.info("job %s (submission %s): its worker stopped; offered again", job.id,
                     job.task_kwargs.get("sub_id"))
            await manager.retry_job(job)
        return len(stalled)
