"""What a validation is doing while it runs.

The Validator reports to an observer (`Progress`): the submission it took,
the phase it is in, and each check as it starts and ends. It knows nothing
of terminals. The observers here either draw it on a terminal (one line per
check, redrawn while the check runs) or log it (the daemon's workers).
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from errauto_daemon.domain import CheckStatus

TICK = 0.5  # seconds between redraws of a running check's line
_CLEAR = "\x1b[K"  # erase to the end of the line


class Progress:
    """Receives a validation's events; every method does nothing here."""

    def submission(self, sub_id: int) -> None:
        """A validation of this submission begins."""

    def phase(self, name: str) -> None:
        """The validation entered a phase (applying, preparing worktree, ...)."""

    def check_started(self, name: str) -> None:
        """A check began to run."""

    def check_finished(self, name: str, status: str, seconds: float, detail: str = "") -> None:
        """A check ended with this status after `seconds` (`detail`: e.g. its exit code)."""

    def state_changed(self, sub_id: int, state: str, seconds: float) -> None:
        """Another process moved a submission waited for to `state`, `seconds` after the wait began."""

    def finished(self) -> None:
        """The validation (or the wait) ended, whatever its outcome."""


SILENT = Progress()


def for_terminal(quiet: bool = False, stream: TextIO | None = None) -> Progress:
    """Progress drawn on `stream` (stderr) if it is a terminal; silent otherwise or if `quiet`."""
    out = sys.stderr if stream is None else stream
    if quiet or not _is_tty(out):
        return SILENT
    return TerminalProgress(out)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def check_line(name: str, status: str, seconds: float, detail: str = "") -> str:
    line = f"    {name:<12}  {status:<9}  {seconds:.1f}s"
    return f"{line}  {detail}" if detail else line


class TerminalProgress(Progress):
    """Phases as lines; a running check as one line redrawn every TICK seconds."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self._running: tuple[str, float] | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def submission(self, sub_id: int) -> None:
        self._line(f"validating submission {sub_id}")

    def phase(self, name: str) -> None:
        self._line(f"  {name}")

    def check_started(self, name: str) -> None:
        self._stop_ticker()
        with self._lock:
            self._running = (name, time.monotonic())
            self._redraw()
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="errauto-progress", daemon=True)
        self._ticker.start()

    def check_finished(self, name: str, status: str, seconds: float, detail: str = "") -> None:
        self._stop_ticker()
        shown = "" if status == CheckStatus.PASSED else detail
        with self._lock:
            self._running = None
            self._write("\r" + check_line(name, status, seconds, shown) + _CLEAR + "\n")

    def state_changed(self, sub_id: int, state: str, seconds: float) -> None:
        self._line(f"#{sub_id} {state:<16} {seconds:.1f}s")

    def finished(self) -> None:
        self._stop_ticker()
        with self._lock:
            if self._running is not None:
                self._running = None
                self._write("\n")

    def _line(self, text: str) -> None:
        with self._lock:
            if self._running is not None:  # never draw over a running check's line
                self._write("\n")
                self._running = None
            self._write(text + "\n")

    def _redraw(self) -> None:
        assert self._running is not None
        name, started = self._running
        self._write("\r" + check_line(name, "running", time.monotonic() - started) + _CLEAR)

    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            with self._lock:
                if self._running is None:
                    return
                self._redraw()

    def _stop_ticker(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            self._stop.set()
            ticker.join()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # the terminal went away; the validation goes on


class LogProgress(Progress):
    """Each check's start and end in a log (the daemon's workers, one each)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.log = logger
        self.sub_id: int | None = None

    def submission(self, sub_id: int) -> None:
        self.sub_id = sub_id

    def phase(self, name: str) -> None:
        self.log.debug("submission %s: %s", self.sub_id, name)

    def check_started(self, name: str) -> None:
        self.log.info("submission %s: check %s started", self.sub_id, name)

    def check_finished(self, name: str, status: str, seconds: float, detail: str = "") -> None:
        self.log.info("submission %s: check %s %s after %.1fs%s", self.sub_id, name, status, seconds,
                      f" ({detail})" if detail and status != CheckStatus.PASSED else "")

    def finished(self) -> None:
        self.sub_id = None
