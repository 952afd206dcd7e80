"""Keep secrets out of anything errauto writes: logs, alerts, the DB, tracebacks.

Which environment variables hold secrets is known to one registry per
process, `SECRETS` (a `Secrets`): the defaults, plus every name a loaded
configuration or an alert sink declares (`register`). Text is redacted with
`redact`; log records with the one `RedactFilter`, on a handler (what it
writes) or on a library's logger (`redact_loggers`: whatever handlers the
process has).
"""
from __future__ import annotations

import logging
import os
import threading
import traceback
import urllib.parse
from collections.abc import Iterable, Mapping

from errauto_daemon.config import DEFAULT_SECRET_ENV, secret_names
from errauto_daemon.errors import printable


class Secrets:
    """The names of the environment variables whose values are secret.

    Values are read from `env` (the live process environment unless given)
    each time, so a variable set after its name was registered is redacted
    too. Names are only ever added, and the set is replaced rather than
    changed in place: a thread redacting never sees it change under it.
    """

    def __init__(self, names: Iterable[str] = DEFAULT_SECRET_ENV, env: Mapping[str, str] = os.environ) -> None:
        self._names = frozenset(names)
        self._env = env
        self._adding = threading.Lock()

    def add(self, names: Iterable[str]) -> None:
        """Also treat the values of these environment variables as secrets."""
        new = frozenset(names)
        with self._adding:
            self._names = self._names | new

    @property
    def names(self) -> frozenset[str]:
        return self._names

    def values(self) -> list[str]:
        """Every secret value and its URL parts, longest first (a value containing another goes first)."""
        values = []
        # Its own names, and those of every configuration this process loaded.
        for name in sorted(self._names | set(secret_names())):
            value = self._env.get(name)
            if value and len(value) >= 4:
                values.append(value)
                values += _url_parts(value)
        return sorted(set(values), key=len, reverse=True)

    def redact(self, text: str) -> str:
        for value in self.values():
            text = text.replace(value, "***")
        return text


SECRETS = Secrets()


def register(names: Iterable[str]) -> None:
    """Also treat the values of these environment variables as secrets (in `SECRETS`)."""
    SECRETS.add(names)


def secret_values() -> list[str]:
    return SECRETS.values()


def redact(text: str) -> str:
    return SECRETS.redact(text)


def _url_parts(value: str) -> list[str]:
    """The secret parts of a URL secret (a webhook's path is its key): HTTP
    libraries quote the path without the host ("Max retries exceeded with
    url: /services/...")."""
    if "://" not in value:
        return []
    parts = urllib.parse.urlsplit(value.strip())
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return [p for p in (path, parts.path) if len(p) >= 8]


class RedactFilter(logging.Filter):
    """Redacts a record in place before anything formats it: its message
    (arguments merged in) and its traceback (formatted now, as `exc_text`).

    The record is shared: handlers that run after the one this filter sits
    on see it redacted too.
    """

    def __init__(self, secrets: Secrets = SECRETS) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        # Log lines quote patches (titles, reasons, file names): escaped, so that
        # `tail -f daemon.log` cannot be driven by them.
        record.msg = printable(self.secrets.redact(record.getMessage()), keep="\n\t")
        record.args = ()
        if record.exc_info:
            record.exc_text = printable(self.secrets.redact("".join(traceback.format_exception(*record.exc_info))),
                                        keep="\n\t")
            record.exc_info = None
        return True


def redact_loggers(names: Iterable[str], secrets: Secrets = SECRETS) -> None:
    """Put a RedactFilter on each of these loggers, once.

    For libraries that log requests and responses verbatim: a logger's
    filters apply to what is logged on it (not on its children), before any
    handler of the process sees the record.
    """
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactFilter) for f in logger.filters):
            logger.addFilter(RedactFilter(secrets))
