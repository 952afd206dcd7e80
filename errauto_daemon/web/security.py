"""Who may use `errauto web`: the token on every request, CSRF on every POST, the headers every page gets.

The token is made when the server starts (`new_token`) and printed in the
URL it prints. The first request that carries it (`?token=`) is answered
with a cookie (HttpOnly, SameSite=Strict) and a redirect to the same page
without it, so the token leaves the address bar and the history. A request
with neither the token nor the cookie gets 403. The CSRF token is derived
from the server's token (an HMAC), so it is fixed for a server's life,
differs from the token and cannot be turned back into it.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

COOKIE = "errauto_web"
CSRF_FIELD = "csrf"

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def host_name(host: str) -> str:
    """A request's Host header without its port: `127.0.0.1:8470` -> `127.0.0.1`, `[::1]:80` -> `::1`."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"errauto web csrf", hashlib.sha256).hexdigest()


def matches(given: str | None, expected: str) -> bool:
    """Whether `given` is `expected`, in time that does not depend on where they differ."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def is_loopback(host: str) -> bool:
    """Whether serving on `host` reaches only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything
