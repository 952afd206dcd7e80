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

import re

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


class HoldLost(Exception):
    """The hold on a submission was lost under its holder (a server restart): it writes no more of it."""


class PatchRejected(Exception):
    """The patch cannot be validated at all: malformed, unsafe, does not apply.

    Reasons quote file names from the patch; control characters in them are
    shown escaped, so a hostile name cannot drive the reader's terminal.
    """

    def __init__(self, reason: str) -> None:
        reason = printable(reason)
        super().__init__(reason)
        self.reason = reason


# What may not reach a terminal as it is: C0 and C1 controls and DEL (ESC
# starts escape sequences, OSC and BEL end them), the bidirectional overrides
# and isolates that reorder what is shown (U+202E), the line and paragraph
# separators, and lone surrogates (undecodable bytes; printing one fails).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str, *, keep: str = "") -> str:
    """`text` with every character that could drive a terminal shown as an
    escape (`\\x1b`, `\\u202e`); the characters in `keep` (say a newline)
    are left as they are."""
    def escaped(match: re.Match[str]) -> str:
        char = match.group()
        if char in keep:
            return char
        if char in _SHORT:
            return _SHORT[char]
        return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"

    return _UNPRINTABLE.sub(escaped, text)


def strip_controls(text: str, keep: str = "\n\t") -> str:
    """`text` without the characters `printable` would escape, but those in
    `keep`: for a commit message errauto writes (lines and tabs kept)."""
    return _UNPRINTABLE.sub(lambda m: m.group() if m.group() in keep else "", text)


def without_controls(text: str) -> str:
    """`text` without the characters `printable` would escape: for what is
    stored where no one escapes it again (a commit's author)."""
    return " ".join(_UNPRINTABLE.sub("", text).split())


STOPPING = "errauto is stopping"


class Cancelled(Exception):
    """Validation was stopped: the daemon is shutting down (requeue, do not
    decide), or a person rejected the submission (`why` is their reason)."""

    def __init__(self, why: str = STOPPING) -> None:
        super().__init__(why)
        self.why = why
