"""The few exception types errauto raises, and the exit codes they map to.

Every command that decides a patch shares these exit codes:

    0  merged, or a pull request was opened
    1  held for review
    2  usage error (bad arguments, missing file, unknown submission)
    3  internal error (a log with the traceback was written)
    4  rejected
    5  configuration error (including a state directory that cannot be used)
    6  `submit --wait`: no daemon is running, or it stopped while waiting
    7  `submit --wait --timeout`: still undecided when the time ran out
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_REVIEW = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_REJECTED = 4
EXIT_CONFIG = 5
EXIT_NO_DAEMON = 6
EXIT_UNDECIDED = 7


class FatalError(RuntimeError):
    """A failure the user can act on: printed as one line, no traceback."""

    exit_code = EXIT_USAGE


class ConfigError(FatalError):
    """The configuration is invalid; the message names the offending key."""

    exit_code = EXIT_CONFIG


class PatchRejected(Exception):
    """The patch cannot be validated at all: malformed, unsafe, does not apply.

    Reasons quote file names from the patch; control characters in them are
    shown escaped, so a hostile name cannot drive the reader's terminal.
    """

    def __init__(self, reason: str) -> None:
        reason = printable(reason)
        super().__init__(reason)
        self.reason = reason


def printable(text: str) -> str:
    """`text` with control characters shown as escapes."""
    if not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        return text
    return "".join(c if not (ord(c) < 32 or 127 <= ord(c) < 160) else repr(c)[1:-1] for c in text)


STOPPING = "errauto is stopping"


class Cancelled(Exception):
    """Validation was stopped: the daemon is shutting down (requeue, do not
    decide), or a person rejected the submission (`why` is their reason)."""

    def __init__(self, why: str = STOPPING) -> None:
        super().__init__(why)
        self.why = why
