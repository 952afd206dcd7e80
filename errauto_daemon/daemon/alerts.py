"""The daemon's alerts thread: delivering the outbox, alerts for logged errors and monitor levels.

Its own thread, so a slow or failing webhook never holds up a worker:
workers only write alerts into the outbox, in their transactions. It
outlives the workers when the daemon stops, so what they decided last is
still delivered (or left in the outbox for the next start).
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time

from errauto_daemon import health, notify
from errauto_daemon.redact import redact
from errauto_daemon.store import Store

log = logging.getLogger("errauto")

MONITOR_EVERY = 60.0  # seconds between the daemon's own monitor level checks
ALERT_POLL = 0.25  # seconds between looks at the outbox when nothing is due
ERROR_ALERT_EVERY = 600.0  # the same logged error raises an alert at most this often


class ErrorAlerts(logging.Handler):
    """Logged errors become `daemon_error` alerts (the alerts thread writes them).

    Only queued here: a handler may run inside another thread's database
    transaction, and must never wait for the database itself.
    """

    def __init__(self, errors: queue.Queue[str]) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.errors.put_nowait(redact(f"[{record.threadName}] {_summary(record)}"))
        except queue.Full:
            pass
        except Exception:
            self.handleError(record)


def _summary(record: logging.LogRecord) -> str:
    """The record's first line, and the exception it carries in one line."""
    message = record.getMessage()
    text = message.splitlines()[0] if message.strip() else record.levelname
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        first = str(exc).splitlines()[0] if str(exc).strip() else ""
        return text + f" ({type(exc).__name__}{': ' + first if first else ''})"
    if record.exc_text:  # a RedactFilter before this handler formatted it already
        lines = [line for line in record.exc_text.splitlines() if line.strip()]
        return text + (f" ({lines[-1].strip()})" if lines else "")
    return text


class Alerts:
    """The alerts thread (`loop`), stopped by `stop`, and the log handler that feeds it."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: queue.Queue[str] = queue.Queue(maxsize=200)
        self.error_handler = ErrorAlerts(self.errors)
        self._raised: dict[str, float] = {}  # an error's first 200 characters -> when it last raised an alert

    def loop(self) -> None:
        store = Store()
        sender = notify.Sender(store)
        lock = notify.OutboxLock()
        try:
            self._deliver_until_stopped(store, sender, lock)
            # Stopping: what the workers decided last goes out now if it can;
            # whatever cannot wait for a backoff stays in the outbox.
            try:
                self._raise_errors(store)
                if lock.acquire():
                    sender.drain(3.0)
            except Exception:
                log.exception("delivering alerts failed")
        finally:
            sender.close()
            lock.release()
            store.close()

    def _deliver_until_stopped(self, store: Store, sender: notify.Sender, lock: notify.OutboxLock) -> None:
        last_check = 0.0
        while not self.stop.is_set():
            wait = ALERT_POLL
            try:
                self._raise_errors(store)
                if time.monotonic() - last_check >= MONITOR_EVERY:
                    last_check = time.monotonic()
                    _check_level(store)
                if lock.acquire():  # else an `errauto monitor` is delivering right now
                    due = sender.deliver_due()
                    wait = ALERT_POLL if due is None else min(ALERT_POLL, due)
            except Exception:
                log.exception("delivering alerts failed")
                wait = 5.0
            self.stop.wait(wait)

    def _raise_errors(self, store: Store) -> None:
        while True:
            try:
                message = self.errors.get_nowait()
            except queue.Empty:
                return
            now = time.monotonic()
            key = message[:200]
            if now - self._raised.get(key, -ERROR_ALERT_EVERY) < ERROR_ALERT_EVERY:
                continue
            self._raised[key] = now
            store.add_alert("daemon_error", message, {"host": socket.gethostname(), "pid": os.getpid()})


def _check_level(store: Store) -> None:
    thresholds = health.configured_thresholds(store)
    found, alert = health.check(store, daemon_pid=os.getpid(), thresholds=thresholds)
    if alert is not None:
        log.info("monitor level %s: %s", found.level, "; ".join(found.reasons) or "all ok")
