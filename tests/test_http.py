"""The one Retry-After parser, shared by the GitHub client and the Slack sender."""
from __future__ import annotations

import email.utils

import pytest

from errauto_daemon import github, http, notify

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

NOW = 1_000_000.0


@pytest.mark.parametrize("value, expected", [
    ("7", 7.0),
    (" 12 ", 12.0),
    ("0", 0.0),
    ("1.5", 1.5),
    (email.utils.formatdate(NOW + 42, usegmt=True), 42.0),
    ("Mon, 12 Jan 1970 13:47:22 -0000", 42.0),  # a date without a zone is in UTC
])
def test_seconds_or_an_http_date(value: str, expected: float) -> None:
    assert http.retry_after(value, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize("value", [
    "-5",
    email.utils.formatdate(NOW - 3600, usegmt=True),  # a date already past
])
def test_never_negative(value: str) -> None:
    assert http.retry_after(value, now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "inf", "nan", "Fri, 99 Foo 2026 xx:yy:zz GMT"])
def test_absent_or_unreadable_is_the_default(value: str | None) -> None:
    assert http.retry_after(value, now=NOW) is None
    assert http.retry_after(value, 30.0, now=NOW) == 30.0


def test_github_and_slack_read_it_the_same_way() -> None:
    date = email.utils.formatdate(NOW + 9, usegmt=True)
    assert github.rate_limit_wait(429, {"retry-after": date}, "", now=NOW) == pytest.approx(9.0)
    assert notify.retry_after(date, 30.0, now=NOW) == pytest.approx(9.0)
    assert github.rate_limit_wait(429, {"retry-after": "1.5"}, "", now=NOW) == 1.5
    assert notify.retry_after("1.5", 30.0, now=NOW) == 1.5


def test_github_falls_back_to_the_rate_limit_reset_when_retry_after_is_unreadable() -> None:
    headers = {"retry-after": "soon", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 20)}
    assert github.rate_limit_wait(403, headers, "", now=NOW) == 21.0
