"""The daemon's life: lock, start, the main thread's scheduler loop, shutdown.

Start: take the lock, set up the log, handle signals, repair half-done
merges and recover abandoned submissions, prune stale worktrees, watch every
registered repository, start the threads, then say ready (to `errauto daemon
start` through its pipe, to systemd with `READY=1`). The main thread then
beats the heartbeat, pets systemd's watchdog, follows registrations, rescans
periodically and feeds queued submissions to the workers. Shutdown: stop
taking work, give running validations most of `grace` seconds, cancel what
is left, let the alerts thread deliver last, release the lock; all within
`grace` of the signal. A thread still busy then does not hold the exit
(`control.exit_now`).
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable

from watchdog.observers.api import ObservedWatch

from errauto_daemon import __version__, inbox, jobs, merge, paths
from errauto_daemon.daemon.alerts import Alerts
from errauto_daemon.daemon.control import exit_now, exit_reserve, join_until, wake_loop
from errauto_daemon.daemon.logs import setup_logging
from errauto_daemon.daemon.stateguard import StateGuard
from errauto_daemon.daemon.watch import Watch, Work
from errauto_daemon.daemon.workers import JobSlots, Workers, follow_loop, recover
from errauto_daemon.errors import ConfigError, FatalError
from errauto_daemon.presence import HEARTBEAT_EVERY, DaemonLock
from errauto_daemon.redact import redact
from errauto_daemon.repo import open_repo
from errauto_daemon.store import Store
from errauto_daemon.systemd import Notifier
from errauto_daemon.workspace import Pool

log = logging.getLogger("errauto")

POLL = 1.0  # seconds between looks at the queue when nothing woke us


class Daemon:
    def __init__(self, *, workers: int | None = None, grace: float = 30.0, rescan: float = 30.0,
                 verbose: bool = False, ready_fd: int | None = None) -> None:
        self.grace = grace
        self.rescan_every = rescan
        self.verbose = verbose
        self.ready_fd = ready_fd
        self.systemd = Notifier()
        self.stopping = threading.Event()  # no new work
        self.wakeup = threading.Event()
        self.state: StateGuard | None = None  # the state database as opened at start
        self.watch = Watch(wakeup=self.wakeup, stopping=self.stopping, intact=self._state_intact)
        self.workers = Workers(stopping=self.stopping, wanted=workers, intact=self._state_intact)
        self.alerts = Alerts()
        self.threads: list[threading.Thread] = []
        self.lock = DaemonLock()
        self.store: Store | None = None
        self.me: tuple[str, str, int] = ("", "", 0)  # its worker row: host, state directory, pid
        self.stop_by: float | None = None  # when the grace period of a stop runs out
        self.runner: jobs.Runner | None = None  # on a database machines share: its job worker
        self.job_slots: JobSlots | None = None

    # What an overflow rescan reads (watch.OverflowRescan takes a daemon too).
    @property
    def watched(self) -> dict[str, list[ObservedWatch]]:
        return self.watch.watched

    @watched.setter
    def watched(self, value: dict[str, list[ObservedWatch]]) -> None:
        self.watch.watched = value

    @property
    def intake_q(self) -> queue.Queue[Work]:
        return self.watch.intake_q

    # -- start and stop ---------------------------------------------------------

    def run(self) -> int:
        try:
            self._start()
        except BaseException as exc:
            self._ready(f"error: {exc}")
            self._shutdown()
            raise
        self._ready("ready")
        log.info("errauto daemon %s ready (pid %d, %d workers, watching %d repositories)",
                 __version__, os.getpid(), self.runner.slots if self.runner else len(self._worker_threads()),
                 len(self.watch.watched))
        log.debug("rescan every %gs, grace %gs, systemd notify %s", self.rescan_every, self.grace,
                  "on" if self.systemd.address else "off")
        try:
            self._schedule()
        finally:
            stuck = self._shutdown()
        if stuck:
            exit_now(stuck)
        if self.state is not None and self.state.lost:
            raise ConfigError(self._state_lost_message())
        log.info("errauto daemon stopped")
        return 0

    def _start(self) -> None:
        self.lock.acquire()
        setup_logging(self.verbose)
        logging.getLogger("errauto").addHandler(self.alerts.error_handler)
        self.store = store = Store()
        if store.shared and not store.has_job_tables():
            raise ConfigError(f"the state database {store} has no job queue yet: run `errauto db migrate`")
        self.state = StateGuard(store.path) if store.path is not None else None  # a file that can vanish
        store.daemon_started(os.getpid(), socket.gethostname(), __version__)
        self.me = (socket.gethostname(), str(paths.state_dir()), os.getpid())
        store.worker_started(*self.me[:2], os.getpid(), __version__, self.workers.count(store))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGHUP, lambda *_: self.wakeup.set())
        self._repair(store)
        self.watch.start()
        self.watch.sync(set(store.repos()))
        self._spawn("intake", self.watch.intake_loop)
        self._spawn("wake", lambda: wake_loop(stopping=self.stopping, wakeup=self.wakeup))
        self._spawn("pull-requests", lambda: follow_loop(self.stopping))
        self._spawn("alerts", self.alerts.loop)
        if store.shared:
            self._start_jobs(store)
        else:
            for number in range(self.workers.count(store)):
                self._spawn(f"worker-{number}", self.workers.loop)
        self.watch.rescan_all()  # whatever is in the inboxes or on the refs already

    def _start_jobs(self, store: Store) -> None:
        """On a database machines share, validations are jobs any daemon may take (`jobs`)."""
        slots = self.workers.count(store)
        self.job_slots = JobSlots(self.workers, store, slots)
        self.runner = jobs.Runner(store, slots, self.job_slots.decide, name=f"{self.me[0]}:{self.me[2]}")
        self.runner.start()
        self.threads.append(self.runner.thread)  # a job stuck past the grace is a thread stuck
        if self.runner.failed is not None:
            raise ConfigError(f"the job worker could not start: {self.runner.failed}")

    def _repair(self, store: Store) -> None:
        """Recover what a previous daemon (or a killed `errauto apply`) left:
        half-done merges first, then abandoned submissions, then stale worktrees."""
        if merge.repair_all():
            log.info("repaired a merge a killed process left half-done")
        recover(store, announce=True)
        for root in store.repos():
            _prune(root)

    def _ready(self, message: str) -> None:
        if message == "ready":
            self.systemd.notify("READY=1", f"STATUS=watching {len(self.watch.watched)} repositories")
        if self.ready_fd is None:
            return
        try:
            os.write(self.ready_fd, (redact(message) + "\n").encode())
            os.close(self.ready_fd)
        except OSError:
            pass
        self.ready_fd = None

    def _on_signal(self, signum: int, frame: object) -> None:
        log.info("received %s: finishing running validations (up to %gs), then stopping",
                 signal.Signals(signum).name, self.grace)
        if self.stop_by is None:
            self.stop_by = time.monotonic() + self.grace
        self.stopping.set()
        self.wakeup.set()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guard_thread, args=(name, target), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guard_thread(self, name: str, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException:
            log.exception("thread %s died; stopping the daemon", name)
            self.stopping.set()
            self.wakeup.set()

    def _shutdown(self) -> list[str]:
        """Stop within the grace period; the names of threads still busy when it ran out."""
        deadline = self.stop_by or time.monotonic() + self.grace
        self.stopping.set()
        self.systemd.notify("STOPPING=1", "STATUS=finishing running validations")
        self.watch.stop()
        if self.runner is not None:
            self.runner.stop(0)  # no new job; the running ones finish (or are cancelled) below
            self.workers.finish([self.runner.thread], deadline, self.grace)
        self.workers.finish(self._worker_threads(), deadline, self.grace)
        if self.job_slots is not None and (self.runner is None or not self.runner.thread.is_alive()):
            self.job_slots.close()
        last = deadline - exit_reserve(self.grace)
        join_until((t for t in self.threads if t.name != "alerts"), last)
        self.alerts.stop.set()
        join_until(self.threads, last)
        logging.getLogger("errauto").removeHandler(self.alerts.error_handler)
        if self.store is not None:
            self.store.daemon_stopped(os.getpid())
            self.store.worker_stopped(*self.me)
            self.store.close()
        self.lock.release()
        return [t.name for t in self.threads if t.is_alive()]

    def _worker_threads(self) -> list[threading.Thread]:
        return [t for t in self.threads if t.name.startswith("worker-")]

    # -- the scheduler (main thread) --------------------------------------------

    def _schedule(self) -> None:
        assert self.store is not None
        store = self.store
        last_beat = last_scan = last_watchdog = last_jobs = 0.0
        watchdog = self.systemd.watchdog_every
        while not self.stopping.is_set():
            if not self._state_intact():
                self._state_lost(store)
                break
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_EVERY:
                with self.workers.in_flight_lock:
                    busy = len(self.workers.in_flight)
                store.heartbeat(os.getpid(), host=self.me[0], home=self.me[1], busy=busy)
                last_beat = now
            if watchdog is not None and now - last_watchdog >= watchdog:
                self.systemd.notify("WATCHDOG=1")  # the loop that feeds workers is turning
                last_watchdog = now
            self.watch.sync(set(store.repos()))  # `watch add` wakes us; one cheap query when nothing changed
            if now - last_scan >= self.rescan_every:
                log.debug("periodic rescan of %d repositories", len(self.watch.watched))
                self.watch.rescan_all()
                recover(store)  # an `errauto apply` or `queue process` killed meanwhile
                if store.shared and inbox.settle_waiting(store):
                    log.debug("settled inbox files of submissions other machines decided")
                last_scan = now
            if self.runner is None:
                self.workers.feed(store)
            elif now - last_jobs >= HEARTBEAT_EVERY:
                self._jobs_beat(store)
                last_jobs = now
            self.wakeup.wait(POLL)
            self.wakeup.clear()


    def _jobs_beat(self, store: Store) -> None:
        """Give queued submissions without a job one; put back the jobs of workers gone silent."""
        assert self.runner is not None
        if self.runner.failed is not None:
            log.error("the job worker stopped (%s); stopping the daemon", self.runner.failed)
            self.stopping.set()
            return
        try:
            added = jobs.sweep(store)
            if added:
                log.info("%d queued submissions had no job: queued", added)
            self.runner.retry_stalled()
        except Exception as exc:  # the server is away: the next beat tries again
            log.warning("looking after the jobs failed: %s", type(exc).__name__)

    # -- the state database under the daemon ----------------------------------------

    def _state_intact(self) -> bool:
        return self.state is None or self.state.intact()

    def _state_lost_message(self) -> str:
        assert self.state is not None
        return (f"the state database {self.state.path} was {self.state.lost} while the daemon ran: "
                "it stopped taking work; start it again to go on with the new state")

    def _state_lost(self, store: Store) -> None:
        """Alert (through the sinks that still work: Slack, the log) and stop taking work."""
        message = self._state_lost_message()
        log.warning("%s", message)
        try:
            # The old database still works for this process: its alerts thread
            # delivers this before the daemon exits.
            store.add_alert("state_lost", message, {"host": socket.gethostname(), "pid": os.getpid(),
                                                    "path": str(store.path)})
        except Exception:
            log.exception("cannot record the state_lost alert")
        self.stopping.set()
        self.wakeup.set()


def _prune(root: str) -> None:
    try:
        removed = Pool(open_repo(root)).prune()
    except (FatalError, OSError) as exc:
        log.warning("cannot prune worktrees of %s: %s", root, exc)
        return
    if removed:
        log.info("pruned %d stale worktrees of %s", len(removed), root)
