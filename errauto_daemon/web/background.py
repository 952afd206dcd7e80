"""Validations asked for on the pages (Retry), run beside the server.

A validation takes as long as the project's checks, minutes perhaps: the
request that asks for one starts it in a thread of its own and is answered
as soon as the validation has claimed the submission (or after a few
seconds, whichever is first), so the page it redirects to already says
`validating` and then follows the decision as every page does (poll.js).
The validation is `decisions.retried`, what `queue retry` runs,
with its own writing connection.

A server stopped mid-validation leaves the submission `validating`; the
daemon or `errauto queue process` requeues it (`Validator.recover`), as
after any process that died.
"""
from __future__ import annotations

import logging
import threading

from errauto_daemon import decisions, progress
from errauto_daemon.errors import FatalError
from errauto_daemon.redact import redact
from errauto_daemon.store import Store
from errauto_daemon.store.where import Where

log = logging.getLogger(__name__)

CLAIM_WAIT = 5.0  # seconds a request waits for its validation to claim the submission


class _Claimed(progress.Progress):
    def __init__(self) -> None:
        self.event = threading.Event()

    def submission(self, sub_id: int) -> None:
        self.event.set()

    def finished(self) -> None:
        self.event.set()


class Retries:
    """At most one validation per submission at a time, each in a thread of its own."""

    def __init__(self, where: Where | None) -> None:
        self._where = where
        self._lock = threading.Lock()
        self._running: dict[int, threading.Thread] = {}

    def start(self, sub_id: int, who: str, *, force: bool) -> bool:
        """Validate `sub_id` again; False when a validation asked here is still running for it."""
        claimed = _Claimed()
        with self._lock:
            running = self._running.get(sub_id)
            if running is not None and running.is_alive():
                return False
            thread = threading.Thread(target=self._run, args=(sub_id, who, force, claimed),
                                      name=f"errauto-web-retry-{sub_id}", daemon=True)
            self._running[sub_id] = thread
            thread.start()
        claimed.event.wait(CLAIM_WAIT)
        return True

    def _run(self, sub_id: int, who: str, force: bool, claimed: _Claimed) -> None:
        store = Store(self._where)
        try:
            decisions.retried(store, sub_id, who, force=force, observer=claimed)
        except FatalError as exc:  # decided meanwhile by someone else: the page shows what happened
            log.warning("retry of #%d: %s", sub_id, redact(str(exc)))
        except Exception as exc:  # the validator recorded it as failed; its message, redacted, for the console
            log.error("retry of #%d failed: %s", sub_id, redact(f"{type(exc).__name__}: {exc}"))
        finally:
            claimed.event.set()
            store.close()
            with self._lock:
                if self._running.get(sub_id) is threading.current_thread():
                    del self._running[sub_id]
