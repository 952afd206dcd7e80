"""Keep secrets out of anything errauto writes: logs, alerts, the DB, tracebacks."""
from __future__ import annotations

import os
from collections.abc import Iterable

from errauto_daemon.config import DEFAULT_SECRET_ENV

_extra_names: set[str] = set()


def register(names: Iterable[str]) -> None:
    """Also treat the values of these environment variables as secrets."""
    _extra_names.update(names)


def secret_values() -> list[str]:
    values = []
    for name in (*DEFAULT_SECRET_ENV, *sorted(_extra_names)):
        value = os.environ.get(name)
        if value and len(value) >= 4:
            values.append(value)
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    for value in secret_values():
        text = text.replace(value, "***")
    return text
