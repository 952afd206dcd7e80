"""The daemon's log: `daemon.log` in the log directory (rotated), and the console
when verbose or when systemd connected stderr to the journal. Both redact."""
from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

from errauto_daemon import paths
from errauto_daemon.redact import RedactFilter


class DaemonLogFile(logging.handlers.RotatingFileHandler):
    """`daemon.log`, rotated at 2 MiB, five kept; every record redacted."""

    def __init__(self) -> None:
        super().__init__(paths.log_dir() / "daemon.log", maxBytes=2 * 1024 * 1024, backupCount=5,
                         encoding="utf-8")
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(message)s"))
        self.addFilter(RedactFilter())

    def _open(self):  # type: ignore[no-untyped-def]
        # Made 0600 before the handler opens it, at start and after every rollover.
        paths.private_file(Path(self.baseFilename))
        return super()._open()


class DaemonConsole(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr; every record redacted. The journal stamps each line itself."""

    def __init__(self, *, journal: bool) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s [%(threadName)s] %(message)s" if journal
                                            else "%(asctime)s %(levelname)s %(message)s"))
        self.addFilter(RedactFilter())


def setup_logging(verbose: bool) -> None:
    """Log errauto's records to the daemon's log (once per process, however often called)."""
    logger = logging.getLogger("errauto")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if any(isinstance(h, (DaemonLogFile, DaemonConsole)) for h in logger.handlers):
        return
    logger.addHandler(DaemonLogFile())
    journal = _stderr_is_journal()
    if verbose or journal:
        logger.addHandler(DaemonConsole(journal=journal))


def _stderr_is_journal() -> bool:
    """Whether systemd connected stderr to the journal (`journalctl --user -u errauto`)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"
