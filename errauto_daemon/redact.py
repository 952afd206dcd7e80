"""Keep secrets out of anything errauto writes: logs, alerts, the DB, tracebacks."""
from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterable

from errauto_daemon.config import secret_names

_extra_names: set[str] = set()


def register(names: Iterable[str]) -> None:
    """Also treat the values of these environment variables as secrets."""
    _extra_names.update(names)


def secret_values() -> list[str]:
    values = []
    for name in (*secret_names(), *sorted(_extra_names)):
        value = os.environ.get(name)
        if value and len(value) >= 4:
            values.append(value)
            values += _url_parts(value)
    return sorted(set(values), key=len, reverse=True)


def _url_parts(value: str) -> list[str]:
    """The secret parts of a URL secret (a webhook's path is its key): HTTP
    libraries quote the path without the host ("Max retries exceeded with
    url: /services/...")."""
    if "://" not in value:
        return []
    parts = urllib.parse.urlsplit(value.strip())
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return [p for p in (path, parts.path) if len(p) >= 8]


def redact(text: str) -> str:
    for value in secret_values():
        text = text.replace(value, "***")
    return text
