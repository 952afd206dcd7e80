"""What errauto reads from HTTP answers itself, shared by GitHub and Slack."""
from __future__ import annotations

import datetime
import email.utils
import math
import time
from typing import overload


@overload
def retry_after(value: str | None, default: float, now: float | None = None) -> float: ...
@overload
def retry_after(value: str | None, default: None = None, now: float | None = None) -> float | None: ...


def retry_after(value: str | None, default: float | None = None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks to wait, never negative.

    The header is a number of seconds or an HTTP date (RFC 9110, 10.2.3);
    a date in the past means now. `default` when it is absent or unreadable.
    """
    text = (value or "").strip()
    if not text:
        return default
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _seconds_until(text, time.time() if now is None else now)
    if seconds is None or not math.isfinite(seconds):
        return default
    return max(0.0, seconds)


def _seconds_until(date: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": a date in UTC, as every HTTP date is
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp() - now
