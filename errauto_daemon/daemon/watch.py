"""Watching: the watchdog observer and its handlers, and intake by repository.

The handlers run on watchdog's dispatcher thread and only enqueue (a path
to take, a repository to scan). The intake thread hands each item to its
repository's lane: a queue and a thread of its own, which does the work one
item at a time: taking inbox files (`inbox.take`), scanning an inbox and the
submit refs (`inbox.scan`, `refwatch.scan`). So a patch that is slow to take
(a huge one, a stuck read) holds up only its own repository's intake; a lane
idle for a while ends, and the next item starts it again. A burst of ref
events asks for one ref scan; an inotify queue overflow asks for a rescan of
everything.
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol, Union

import pygit2
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
from watchdog.observers.api import BaseObserver, ObservedWatch

from errauto_daemon import config as config_mod
from errauto_daemon import inbox, refwatch
from errauto_daemon.errors import ConfigError, FatalError
from errauto_daemon.intake import recorded_name
from errauto_daemon.openfiles import being_written
from errauto_daemon.repo import open_repo, remote_name
from errauto_daemon.store import Store

log = logging.getLogger("errauto")

# What the intake thread is asked to do:
#   ("file", (root, path))      a complete file in root's inbox: take it
#   ("new-file", (root, path))  a file appeared: take it unless someone still writes it
#   ("scan", root)              scan root's inbox and submit refs
#   ("refs", root)              scan root's submit refs
Work = tuple[str, Union[tuple[str, Path], str]]

LANE_IDLE = 60.0  # seconds without work before a repository's intake thread ends
LANE_JOIN = 2.0  # seconds the stopping intake waits for all lanes together

# The loggers through which watchdog tells of an inotify queue overflow.
_INOTIFY_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")


class _InboxHandler(FileSystemEventHandler):
    """Runs on watchdog's dispatcher thread: only enqueues, never works."""

    def __init__(self, root: str, folder: Path, intake_q: queue.Queue[Work]) -> None:
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

    def __init__(self, root: str, intake_q: queue.Queue[Work], pending: set[str],
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


class Rescannable(Protocol):
    """What an overflow rescan needs: the watched repositories, the intake queue, the wake-up."""

    @property
    def watched(self) -> Mapping[str, object]: ...
    @property
    def intake_q(self) -> queue.Queue[Work]: ...
    @property
    def wakeup(self) -> threading.Event: ...


class OverflowRescan(logging.Handler):
    """Rescan every inbox and every repository's refs when the kernel drops events.

    watchdog tells of an inotify queue overflow only in its log, so that is
    where errauto listens; the periodic rescan would catch up too, but later.
    """

    def __init__(self, daemon: Rescannable) -> None:
        super().__init__(level=logging.WARNING)
        self.daemon = daemon

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" not in record.getMessage().lower():
            return
        for root in list(self.daemon.watched):
            self.daemon.intake_q.put(("scan", root))
        self.daemon.wakeup.set()


class _Lane:
    """One repository's intake: its queue, and the thread that works it."""

    def __init__(self, root: str, watch: Watch) -> None:
        self.root = root
        self.work: queue.Queue[Work] = queue.Queue()
        self.thread = threading.Thread(target=watch._lane_loop, args=(self,), name=f"intake-{Path(root).name}",
                                       daemon=True)
        self.thread.start()


class Watch:
    """The repositories being watched, and the thread that works their events.

    `sync` (on the main thread) follows the registered repositories;
    `intake_loop` runs on its own thread until `stopping` is set, handing
    each item to its repository's lane; a lane sets `wakeup` whenever it
    recorded a new submission.
    """

    def __init__(self, *, wakeup: threading.Event, stopping: threading.Event,
                 intact: Callable[[], bool] = lambda: True) -> None:
        self.wakeup = wakeup
        self.stopping = stopping
        self.intact = intact  # whether the state database is still the daemon's (checked before each item)
        self.intake_q: queue.Queue[Work] = queue.Queue()
        self.watched: dict[str, list[ObservedWatch]] = {}
        self.unwatchable: set[str] = set()  # registered, but could not be watched (logged)
        self.refs_pending: set[str] = set()
        self.refs_pending_lock = threading.Lock()
        self.observer: BaseObserver | None = None
        self.overflow: OverflowRescan | None = None
        self.lanes: dict[str, _Lane] = {}  # repository -> its intake lane, while it has work
        self.lanes_lock = threading.Lock()

    def start(self) -> None:
        _shorten_move_pairing()
        self.overflow = OverflowRescan(self)
        for name in _INOTIFY_LOGGERS:
            logging.getLogger(name).addHandler(self.overflow)
        self.observer = Observer()
        self.observer.start()

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=10)
        if self.overflow is not None:
            for name in _INOTIFY_LOGGERS:
                logging.getLogger(name).removeHandler(self.overflow)

    def rescan_all(self) -> None:
        for root in list(self.watched):
            self.intake_q.put(("scan", root))

    def sync(self, roots: set[str]) -> None:
        """Watch every registered repository (new registrations included), and no other."""
        if roots == set(self.watched) | self.unwatchable:
            return
        for root in list(self.watched):
            if root not in roots:
                self._unschedule(self.watched.pop(root))
                log.info("stopped watching %s", root)
        self.unwatchable &= roots
        for root in sorted(roots - set(self.watched) - self.unwatchable):
            self._watch(root)

    def _watch(self, root: str) -> None:
        assert self.observer is not None
        watches: list[ObservedWatch] = []
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
            self._unschedule(watches)
            self.unwatchable.add(root)
            return
        self.watched[root] = watches
        self.intake_q.put(("scan", root))
        log.info("watching %s", root)

    def _unschedule(self, watches: Iterable[ObservedWatch]) -> None:
        assert self.observer is not None
        for watch in watches:
            self.observer.unschedule(watch)

    # -- the intake thread --------------------------------------------------------

    def intake_loop(self) -> None:
        """Hand each item to its repository's lane until stopping; then let the lanes end."""
        while not self.stopping.is_set():
            try:
                kind, arg = self.intake_q.get(timeout=0.5)
            except queue.Empty:
                continue
            log.debug("event: %s %s", kind, recorded_name(str(arg[1])) if isinstance(arg, tuple) else arg)
            root = arg[0] if isinstance(arg, tuple) else arg
            with self.lanes_lock:
                lane = self.lanes.get(root)
                if lane is None:
                    lane = self.lanes[root] = _Lane(root, self)
                lane.work.put((kind, arg))
        with self.lanes_lock:
            lanes = list(self.lanes.values())
        deadline = time.monotonic() + LANE_JOIN
        for lane in lanes:
            lane.thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if lane.thread.is_alive():
                log.warning("intake of %s is still busy; stopping without it", lane.root)

    def _lane_loop(self, lane: _Lane) -> None:
        store: Store | None = None  # opened with the first item: never on a state that is gone
        idle_since = time.monotonic()
        try:
            while not self.stopping.is_set():
                try:
                    kind, arg = lane.work.get(timeout=0.5)
                except queue.Empty:
                    if time.monotonic() - idle_since >= LANE_IDLE and self._retire(lane):
                        return
                    continue
                if not self.intact():
                    continue  # left where it is, for the next daemon
                store = store or Store()
                self._work(store, kind, arg)
                idle_since = time.monotonic()
        except Exception:
            # Its items are taken again by the next rescan, in a new lane.
            log.exception("intake of %s stopped", lane.root)
            self._retire(lane, force=True)
        finally:
            if store is not None:
                store.close()

    def _retire(self, lane: _Lane, *, force: bool = False) -> bool:
        """End an idle lane, unless work reached it meanwhile (the dispatcher puts under the same lock)."""
        with self.lanes_lock:
            if not force and not lane.work.empty():
                return False
            if self.lanes.get(lane.root) is lane:
                del self.lanes[lane.root]
            return True

    def _work(self, store: Store, kind: str, arg: tuple[str, Path] | str) -> None:
        try:
            if self._intake(store, kind, arg):
                self.wakeup.set()
        except ConfigError as exc:
            log.debug("%s %s: %s", kind, arg, exc)
            try:
                check_config(store, arg[0] if isinstance(arg, tuple) else arg)
            except FatalError as again:
                log.warning("%s %s: %s", kind, arg, again)
        except FatalError as exc:
            log.warning("%s %s: %s", kind, arg, exc)
        except Exception:
            log.exception("intake of %s %s failed", kind, arg)

    def _intake(self, store: Store, kind: str, arg: tuple[str, Path] | str) -> bool:
        """Do one item of work; whether it recorded a new submission."""
        if isinstance(arg, tuple):  # "file" or "new-file"
            root, path = arg
            if kind == "new-file" and being_written(path) is not False:
                return False  # its close event follows
            sub = inbox.take(store, root, path)
            log.debug("%s: %s", recorded_name(path.name), f"taken as #{sub.id}" if sub is not None else "not taken")
            return sub is not None
        if kind == "scan":
            if not check_config(store, arg):
                return False  # its patches wait, told once per configuration (an alert, `monitor`)
            taken = inbox.scan(store, arg) + refwatch.scan(store, arg)
            log.debug("scan of %s: %d new submissions", arg, len(taken))
            return bool(taken)
        if kind == "refs":
            with self.refs_pending_lock:
                self.refs_pending.discard(arg)  # later events ask for another scan
            submitted = refwatch.scan(store, arg)
            log.debug("ref scan of %s: %d new submissions", arg, len(submitted))
            return bool(submitted)
        return False


def check_config(store: Store, root: str) -> bool:
    """Whether the repository's configuration can be used.

    One that cannot is recorded (`queue show` and `monitor` show it) and
    alerted once per configuration: its digest is the error and the
    configuration files' blob ids on the branch HEAD names. One that loads
    again clears the record.
    """
    repo = open_repo(root)
    try:
        config = config_mod.load(repo)
    except FatalError as exc:
        error = str(exc)
        if store.config_invalid(root, _config_digest(repo, error), error) is not None:
            log.warning("the configuration of %s cannot be used, its patches wait: %s", root, error)
        return False
    if store.config_valid(root):
        log.info("the configuration of %s can be used again", root)
    remote = remote_name(repo, config.push, config.remote_url)
    if remote and store.clone_of(remote) != root:
        store.add_repo(root, remote)  # named by its push remote to the other machines (`push` set since)
    return True


def _config_digest(repo: pygit2.Repository, error: str) -> str:
    digest = hashlib.sha256(error.encode())
    branch = config_mod.head_branch(repo)
    ref = repo.references.get(f"refs/heads/{branch}") if branch else None
    if ref is not None:
        tree = ref.peel(pygit2.Commit).tree
        for name in (config_mod.CONFIG_FILE, config_mod.PYPROJECT):
            digest.update(f"\0{name}:{tree[name].id if name in tree else '-'}".encode())
    return digest.hexdigest()


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
