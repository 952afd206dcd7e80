"""The errauto daemon: watch inboxes and refs, validate with a pool of workers.

Threads, and what each owns:

    main        the lock, signals, the scheduler loop: heartbeat, feeding queued
                submissions to workers, periodic rescans, recovery
    observer    watchdog's: its handlers only enqueue paths, never work
    intake      takes dropped files and scans refs, one at a time
    wake        reads the wake FIFO (`errauto submit` writes a byte there)
    worker-N    one Validator each; validates, decides, settles inbox files
    alerts      delivers the outbox (notify.Sender: alerts.jsonl, Slack), turns
                logged errors into `daemon_error` alerts, and checks the
                monitor's level every minute; a worker never waits for it

Nothing is kept only in memory: the queue is the `queued` rows of the
database, so a submission recorded while no daemon runs is processed when
one starts, and a worker's in-memory queue can be lost without losing work.

One daemon per user: an exclusive flock on `daemon.lock`, held for the
daemon's whole life (a pid file could name a reused pid). The heartbeat row
in the database tells other commands whether it is alive.

SIGTERM / SIGINT: stop taking new work, let running validations finish for
`grace` seconds, then cancel their checks (process groups killed, the
submissions requeued), and exit 0. After a SIGKILL, the next start recovers:
abandoned submissions are requeued (or recorded merged when their merge had
reached the target), stale worktrees pruned.
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import select
import signal
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from errauto_daemon import __version__, health, inbox, merge, notify, paths, refwatch
from errauto_daemon import config as config_mod
from errauto_daemon.errors import FatalError
from errauto_daemon.intake import open_repo
from errauto_daemon.openfiles import being_written
from errauto_daemon.presence import DaemonLock, running_pid
from errauto_daemon.progress import LogProgress
from errauto_daemon.redact import redact
from errauto_daemon.store import Store
from errauto_daemon.systemd import Notifier
from errauto_daemon.validate import Validator
from errauto_daemon.workspace import Pool

log = logging.getLogger("errauto")

HEARTBEAT = 2.0  # seconds between heartbeats
ALIVE_WITHIN = 15.0  # a heartbeat older than this means the daemon is not alive
POLL = 1.0  # seconds between looks at the queue when nothing woke us
MAX_ATTEMPTS = 3  # validations of one submission interrupted or crashed before it fails
FOLLOW_EVERY = 60.0  # seconds between looks at open pull requests
MONITOR_EVERY = 60.0  # seconds between the daemon's own monitor level checks
ALERT_POLL = 0.25  # seconds between looks at the outbox when nothing is due
ERROR_ALERT_EVERY = 600.0  # the same logged error raises an alert at most this often


# --------------------------------------------------------------------------
# watching

class _InboxHandler(FileSystemEventHandler):
    """Runs on watchdog's dispatcher thread: only enqueues, never works."""

    def __init__(self, root: str, folder: Path, intake_q: queue.Queue[tuple[str, Any]]) -> None:
        self.root = root
        self.folder = folder
        self.intake_q = intake_q

    def _mine(self, path: str | bytes) -> Path | None:
        p = Path(os.fsdecode(path))
        return p if p.parent == self.folder and inbox.is_candidate(p) else None

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if isinstance(event, FileMovedEvent):
            # Renamed into place: complete (the safe way to drop a file).
            dest = self._mine(event.dest_path)
            if dest is not None:
                self.intake_q.put(("file", (self.root, dest)))
        elif isinstance(event, FileClosedEvent):
            # Closed after writing: complete.
            path = self._mine(event.src_path)
            if path is not None:
                self.intake_q.put(("file", (self.root, path)))
        elif isinstance(event, FileCreatedEvent):
            # Either created to be written (its close event follows) or renamed
            # in from outside the folder (inotify reports that as a creation):
            # the intake thread tells them apart.
            path = self._mine(event.src_path)
            if path is not None:
                self.intake_q.put(("new-file", (self.root, path)))
        elif isinstance(event, FileModifiedEvent):
            pass  # still being written; its close event (or a rescan) takes it


class _RefHandler(FileSystemEventHandler):
    """Asks for a ref scan of the repository; a burst of events asks once."""

    def __init__(self, root: str, intake_q: queue.Queue[tuple[str, Any]], pending: set[str],
                 pending_lock: threading.Lock) -> None:
        self.root = root
        self.intake_q = intake_q
        self.pending = pending
        self.pending_lock = pending_lock

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirMovedEvent) or event.event_type in ("opened", "closed_no_write"):
            return
        name = os.fsdecode(event.src_path)
        if "/refs/" in name or name.endswith(("packed-refs", "packed-refs.lock")):
            with self.pending_lock:
                if self.root in self.pending:
                    return
                self.pending.add(self.root)
            self.intake_q.put(("refs", self.root))


# --------------------------------------------------------------------------
# the daemon

class Daemon:
    def __init__(self, *, workers: int | None = None, grace: float = 30.0, rescan: float = 30.0,
                 verbose: bool = False, ready_fd: int | None = None) -> None:
        self.workers_wanted = workers
        self.grace = grace
        self.rescan_every = rescan
        self.verbose = verbose
        self.ready_fd = ready_fd
        self.systemd = Notifier()
        self.stopping = threading.Event()  # no new work
        self.cancel = threading.Event()  # running checks are killed
        self.wakeup = threading.Event()
        self.intake_q: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.work_q: queue.Queue[int] = queue.Queue()
        self.in_flight: set[int] = set()
        self.in_flight_lock = threading.Lock()
        self.watched: dict[str, list[Any]] = {}
        self.unwatchable: set[str] = set()  # registered, but could not be watched (logged)
        self.refs_pending: set[str] = set()
        self.refs_pending_lock = threading.Lock()
        self.observer: BaseObserver | None = None
        self.overflow: OverflowRescan | None = None
        self.threads: list[threading.Thread] = []
        self.lock = DaemonLock()
        self.store: Store | None = None
        # The alerts thread outlives the workers: what they decide while
        # stopping is still delivered (or left in the outbox for the next start).
        self.alerts_stop = threading.Event()
        self.errors: queue.Queue[str] = queue.Queue(maxsize=200)
        self.error_handler = _ErrorAlerts(self.errors)

    # -- lifecycle ---------------------------------------------------------------

    def run(self) -> int:
        try:
            self._start()
        except BaseException as exc:
            self._ready(f"error: {exc}")
            self._shutdown()
            raise
        self._ready("ready")
        log.info("errauto daemon %s ready (pid %d, %d workers, watching %d repositories)",
                 __version__, os.getpid(), len(self._workers()), len(self.watched))
        log.debug("rescan every %gs, grace %gs, systemd notify %s", self.rescan_every, self.grace,
                  "on" if self.systemd.address else "off")
        try:
            self._schedule()
        finally:
            self._shutdown()
        log.info("errauto daemon stopped")
        return 0

    def _start(self) -> None:
        self.lock.acquire()
        _setup_logging(self.verbose)
        logging.getLogger("errauto").addHandler(self.error_handler)
        self.store = Store()
        self.store.daemon_started(os.getpid(), socket.gethostname(), __version__)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGHUP, lambda *_: self.wakeup.set())
        # Recover what a previous daemon (or a killed `errauto apply`) left:
        # half-done merges first, then abandoned submissions.
        if merge.repair_all():
            log.info("repaired a merge a killed process left half-done")
        for sub in Validator(self.store).recover(MAX_ATTEMPTS):
            log.info("recovered submission %d: %s", sub.id, sub.state)
            inbox.settle(self.store, sub)
        for root in self.store.repos():
            self._prune(root)
        _shorten_move_pairing()
        self.overflow = OverflowRescan(self)
        for name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
            logging.getLogger(name).addHandler(self.overflow)
        self.observer = Observer()
        self.observer.start()
        self._sync_watches()
        self._spawn("intake", self._intake_loop)
        self._spawn("wake", self._wake_loop)
        self._spawn("pull-requests", self._follow_loop)
        self._spawn("alerts", self._alerts_loop)
        for number in range(self._worker_count()):
            self._spawn(f"worker-{number}", self._worker_loop)
        # Whatever is in the inboxes or on the refs already.
        for root in list(self.watched):
            self.intake_q.put(("scan", root))

    def _ready(self, message: str) -> None:
        if message == "ready":
            self.systemd.notify("READY=1", f"STATUS=watching {len(self.watched)} repositories")
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
        self.stopping.set()
        self.wakeup.set()

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=self._guard_thread, args=(name, target), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guard_thread(self, name: str, target: Any) -> None:
        try:
            target()
        except BaseException:
            log.exception("thread %s died; stopping the daemon", name)
            self.stopping.set()
            self.wakeup.set()

    def _shutdown(self) -> None:
        self.stopping.set()
        self.systemd.notify("STOPPING=1", "STATUS=finishing running validations")
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=10)
        if self.overflow is not None:
            for name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
                logging.getLogger(name).removeHandler(self.overflow)
        workers = self._workers()
        deadline = time.monotonic() + self.grace
        for thread in workers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in workers):
            log.info("grace period over: cancelling running checks")
            self.cancel.set()
        for thread in self.threads:
            if thread.name != "alerts":
                thread.join(timeout=30)
        self.alerts_stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        logging.getLogger("errauto").removeHandler(self.error_handler)
        if self.store is not None:
            self.store.daemon_stopped(os.getpid())
            self.store.close()
        self.lock.release()

    def _workers(self) -> list[threading.Thread]:
        return [t for t in self.threads if t.name.startswith("worker-")]

    def _worker_count(self) -> int:
        if self.workers_wanted:
            return self.workers_wanted
        counts = []
        assert self.store is not None
        for root in self.store.repos():
            try:
                counts.append(config_mod.load(open_repo(root)).workers)
            except FatalError:
                continue
        return max(counts, default=config_mod.Config.workers)

    # -- the scheduler (main thread) --------------------------------------------

    def _schedule(self) -> None:
        assert self.store is not None
        last_beat = last_scan = last_watchdog = 0.0
        watchdog = self.systemd.watchdog_every
        while not self.stopping.is_set():
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT:
                self.store.heartbeat(os.getpid())
                last_beat = now
            if watchdog is not None and now - last_watchdog >= watchdog:
                self.systemd.notify("WATCHDOG=1")  # the loop that feeds workers is turning
                last_watchdog = now
            self._sync_watches()  # `watch add` wakes us; one cheap query when nothing changed
            if now - last_scan >= self.rescan_every:
                log.debug("periodic rescan of %d repositories", len(self.watched))
                for root in list(self.watched):
                    self.intake_q.put(("scan", root))
                # An `errauto apply` or `queue process` killed meanwhile.
                for sub in Validator(self.store).recover(MAX_ATTEMPTS):
                    inbox.settle(self.store, sub)
                last_scan = now
            self._feed()
            self.wakeup.wait(POLL)
            self.wakeup.clear()

    def _feed(self) -> None:
        assert self.store is not None
        for sub_id in self.store.queued_ids(limit=1000):
            with self.in_flight_lock:
                if sub_id in self.in_flight:
                    continue
                self.in_flight.add(sub_id)
            log.debug("submission %d handed to the workers", sub_id)
            self.work_q.put(sub_id)

    def _sync_watches(self) -> None:
        """Watch every registered repository (new registrations included)."""
        assert self.store is not None and self.observer is not None
        roots = set(self.store.repos())
        if roots == set(self.watched) | self.unwatchable:
            return
        for root in list(self.watched):
            if root not in roots:
                for watch in self.watched.pop(root):
                    self.observer.unschedule(watch)
                log.info("stopped watching %s", root)
        self.unwatchable &= roots
        for root in sorted(roots - set(self.watched) - self.unwatchable):
            watches = []
            try:
                repo = open_repo(root)
                folder = inbox.ensure_inbox(root)
                if folder is not None:
                    # Recursive although only the top level is taken: errauto moves
                    # taken files into subfolders, and a move out of a watched
                    # folder into an unwatched one cannot be paired, which makes
                    # watchdog hold every later event for half a second.
                    watches.append(self.observer.schedule(
                        _InboxHandler(root, folder.resolve(), self.intake_q), str(folder.resolve()),
                        recursive=True))
                gitdir = Path(repo.path)
                refs = _RefHandler(root, self.intake_q, self.refs_pending, self.refs_pending_lock)
                watches.append(self.observer.schedule(refs, str(gitdir / "refs"), recursive=True))
                watches.append(self.observer.schedule(refs, str(gitdir), recursive=False))
            except (FatalError, OSError) as exc:
                log.warning("cannot watch %s: %s", root, exc)
                for watch in watches:
                    self.observer.unschedule(watch)
                self.unwatchable.add(root)
                continue
            self.watched[root] = watches
            self.intake_q.put(("scan", root))
            log.info("watching %s", root)

    def _prune(self, root: str) -> None:
        try:
            removed = Pool(open_repo(root)).prune()
        except (FatalError, OSError) as exc:
            log.warning("cannot prune worktrees of %s: %s", root, exc)
            return
        if removed:
            log.info("pruned %d stale worktrees of %s", len(removed), root)

    # -- intake thread ------------------------------------------------------------

    def _intake_loop(self) -> None:
        store = Store()
        while not self.stopping.is_set():
            try:
                kind, arg = self.intake_q.get(timeout=0.5)
            except queue.Empty:
                continue
            log.debug("event: %s %s", kind, arg[1] if isinstance(arg, tuple) else arg)
            try:
                if kind == "file" or (kind == "new-file" and being_written(arg[1]) is False):
                    root, path = arg
                    sub = inbox.take(store, root, path)
                    log.debug("%s: %s", path.name, f"taken as #{sub.id}" if sub is not None else "not taken")
                    if sub is not None:
                        self.wakeup.set()
                elif kind == "scan":
                    taken = inbox.scan(store, arg) + refwatch.scan(store, arg)
                    log.debug("scan of %s: %d new submissions", arg, len(taken))
                    if taken:
                        self.wakeup.set()
                elif kind == "refs":
                    with self.refs_pending_lock:
                        self.refs_pending.discard(arg)  # later events ask for another scan
                    submitted = refwatch.scan(store, arg)
                    log.debug("ref scan of %s: %d new submissions", arg, len(submitted))
                    if submitted:
                        self.wakeup.set()
            except FatalError as exc:
                log.warning("%s %s: %s", kind, arg, exc)
            except Exception:
                log.exception("intake of %s %s failed", kind, arg)
        store.close()

    # -- pull requests ------------------------------------------------------------------

    def _follow_loop(self) -> None:
        """Record pull requests merged or closed on GitHub, at a bounded rate.

        Its own thread: a GitHub call may wait out a rate limit, and neither
        intake nor the heartbeat may wait with it.
        """
        from errauto_daemon import github

        store = Store()
        while not self.stopping.wait(FOLLOW_EVERY):
            try:
                decided = github.follow_open_pull_requests(
                    store, limit=20, min_interval=FOLLOW_EVERY,
                    on_decided=lambda sub: inbox.settle(store, sub))
                if decided:
                    log.info("%d pull requests were merged or closed on GitHub", decided)
            except Exception:
                log.exception("following pull requests failed")
        store.close()

    # -- alerts thread ----------------------------------------------------------------

    def _alerts_loop(self) -> None:
        """Deliver the outbox; raise alerts for logged errors and monitor levels.

        Its own thread, so a slow or failing webhook never holds up a worker:
        workers only write alerts into the outbox, in their transactions.
        """
        store = Store()
        sender = notify.Sender(store)
        lock = notify.OutboxLock()
        raised: dict[str, float] = {}
        last_check = 0.0
        try:
            while not self.alerts_stop.is_set():
                wait = ALERT_POLL
                try:
                    self._raise_errors(store, raised)
                    if time.monotonic() - last_check >= MONITOR_EVERY:
                        last_check = time.monotonic()
                        self._check_level(store)
                    if lock.acquire():  # else an `errauto monitor` is delivering right now
                        due = sender.deliver_due()
                        wait = ALERT_POLL if due is None else min(ALERT_POLL, due)
                except Exception:
                    log.exception("delivering alerts failed")
                    wait = 5.0
                self.alerts_stop.wait(wait)
            # Stopping: what the workers decided last goes out now if it can;
            # whatever cannot wait for a backoff stays in the outbox.
            try:
                self._raise_errors(store, raised)
                if lock.acquire():
                    sender.drain(3.0)
            except Exception:
                log.exception("delivering alerts failed")
        finally:
            sender.close()
            lock.release()
            store.close()

    def _raise_errors(self, store: Store, raised: dict[str, float]) -> None:
        while True:
            try:
                message = self.errors.get_nowait()
            except queue.Empty:
                return
            now = time.monotonic()
            key = message[:200]
            if now - raised.get(key, -ERROR_ALERT_EVERY) < ERROR_ALERT_EVERY:
                continue
            raised[key] = now
            store.add_alert("daemon_error", message, {"host": socket.gethostname(), "pid": os.getpid()})

    def _check_level(self, store: Store) -> None:
        thresholds = health.configured_thresholds(store)
        found, alert = health.check(store, daemon_pid=os.getpid(), thresholds=thresholds)
        if alert is not None:
            log.info("monitor level %s: %s", found.level, "; ".join(found.reasons) or "all ok")

    # -- wake thread ----------------------------------------------------------------

    def _wake_loop(self) -> None:
        path = paths.wake_fifo()
        if path.exists() and not stat.S_ISFIFO(path.lstat().st_mode):
            path.unlink()
        if not path.exists():
            os.mkfifo(path, 0o600)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            while not self.stopping.is_set():
                ready, _, _ = select.select([fd], [], [], 0.5)
                if not ready:
                    continue
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                if data:
                    self.wakeup.set()
                else:
                    # Every writer closed: reopen, or select keeps returning at once.
                    os.close(fd)
                    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        finally:
            os.close(fd)

    # -- workers ------------------------------------------------------------------

    def _worker_loop(self) -> None:
        store = Store()
        validator = Validator(store, cancel=self.cancel, retry_internal=MAX_ATTEMPTS,
                              progress=LogProgress(logging.getLogger("errauto.worker")))
        while not self.stopping.is_set():
            try:
                sub_id = self.work_q.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                if self.stopping.is_set():
                    break
                log.debug("taking submission %d (validating it unless another process holds it)", sub_id)
                sub = validator.process(sub_id)
                log.info("submission %d: %s%s", sub.id, sub.state,
                         f" ({sub.reason})" if sub.reason else "")
                inbox.settle(store, sub)
            except FatalError as exc:
                log.warning("submission %d: %s", sub_id, exc)
            except Exception:
                log.exception("submission %d: internal error", sub_id)
            finally:
                with self.in_flight_lock:
                    self.in_flight.discard(sub_id)
        validator.release()
        store.close()


class OverflowRescan(logging.Handler):
    """Rescan every inbox and every repository's refs when the kernel drops events.

    watchdog tells of an inotify queue overflow only in its log, so that is
    where errauto listens; the periodic rescan would catch up too, but later.
    """

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(level=logging.WARNING)
        self.daemon = daemon

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" not in record.getMessage().lower():
            return
        for root in list(self.daemon.watched):
            self.daemon.intake_q.put(("scan", root))
        self.daemon.wakeup.set()


def _shorten_move_pairing() -> None:
    """Stop watchdog's inotify reader from stalling half a second per move.

    It holds each IN_MOVED_FROM for `delay` seconds to pair it with its
    IN_MOVED_TO, and its queue sleeps out the whole delay even when the pair
    arrives a microsecond later, so every file errauto moves into a fate
    folder stalls every event behind it. A pair is read in one batch; 20 ms
    is plenty, and an unpaired move only reads as a delete plus a create,
    which the inbox handles anyway.
    """
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper as Grouper
    except ImportError:
        try:  # watchdog before 6
            from watchdog.observers.inotify_buffer import InotifyBuffer as Grouper  # type: ignore[no-redef,import-not-found]
        except ImportError:  # not Linux: no inotify, nothing to tune
            return
    Grouper.delay = 0.02


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("errauto")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if any(getattr(h, "_errauto", False) for h in logger.handlers):
        return
    handler = logging.handlers.RotatingFileHandler(
        paths.log_dir() / "daemon.log", maxBytes=2 * 1024 * 1024, backupCount=5, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(message)s"))
    handler.addFilter(_Redact())
    handler._errauto = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    journal = _stderr_is_journal()
    if verbose or journal:
        console = logging.StreamHandler()
        # The journal stamps each line itself.
        console.setFormatter(logging.Formatter("%(levelname)s [%(threadName)s] %(message)s" if journal
                                               else "%(asctime)s %(levelname)s %(message)s"))
        console.addFilter(_Redact())
        console._errauto = True  # type: ignore[attr-defined]
        logger.addHandler(console)


def _stderr_is_journal() -> bool:
    """Whether systemd connected stderr to the journal (`journalctl --user -u errauto`)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


class _ErrorAlerts(logging.Handler):
    """Logged errors become `daemon_error` alerts (the alerts thread writes them).

    Only queued here: a handler may run inside another thread's database
    transaction, and must never wait for the database itself.
    """

    def __init__(self, errors: queue.Queue[str]) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            text = message.splitlines()[0] if message.strip() else record.levelname
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                first = str(exc).splitlines()[0] if str(exc).strip() else ""
                text += f" ({type(exc).__name__}{': ' + first if first else ''})"
            elif record.exc_text:  # another handler's _Redact formatted it already
                lines = [line for line in record.exc_text.splitlines() if line.strip()]
                text += f" ({lines[-1].strip()})" if lines else ""
            self.errors.put_nowait(redact(f"[{record.threadName}] {text}"))
        except queue.Full:
            pass
        except Exception:
            self.handleError(record)


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


def daemon_status() -> dict[str, Any]:
    store = Store()
    pid = running_pid()
    row = store.daemon_row()
    now = time.time()
    in_flight = [
        {"id": s.id, "title": s.title, "since": round(now - s.updated_at, 1)}
        for s in store.submissions(("validating",), limit=100)
    ]
    alive = pid is not None and row is not None and now - row["heartbeat_at"] < ALIVE_WITHIN
    return {
        "running": pid is not None,
        "alive": alive,
        "pid": pid,
        "uptime": round(now - row["started_at"], 1) if row and pid else None,
        "heartbeat_age": round(now - row["heartbeat_at"], 1) if row else None,
        "repos": store.repos(),
        "queued": store.count(("queued",)),
        "in_flight": in_flight,
    }
