"""Tell systemd how the daemon is doing: the sd_notify datagram protocol.

Under a `Type=notify` unit, systemd passes `$NOTIFY_SOCKET`, a unix datagram
socket (a path, or an abstract address written with a leading `@`), and
reads newline-separated `KEY=VALUE` states from it: `READY=1` once started,
`STOPPING=1` when shutting down, `WATCHDOG=1` to say it is still alive when
the unit has `WatchdogSec=`. Without `$NOTIFY_SOCKET` every call does nothing.
"""
from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self) -> None:
        # Taken out of the environment: a check the daemon runs must not talk to systemd as the daemon.
        address = os.environ.pop("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_every = _watchdog_interval()

    def notify(self, *states: str) -> bool:
        """Send states such as `READY=1`; False when there is no socket or it is gone."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(states).encode(), self.address)
        except OSError:
            return False
        return True


def _watchdog_interval() -> float | None:
    """Half of `WatchdogSec` (systemd's advice), when it is meant for this process."""
    usec = os.environ.pop("WATCHDOG_USEC", "")
    pid = os.environ.pop("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 2
