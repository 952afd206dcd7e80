"""`errauto monitor [--json]`: one level for people and for cron.

Exit 0 ok, 1 warning, 2 critical (3: errauto itself failed). The level is
recorded, and an alert raised when it changed (health.check). Without a
running daemon nobody else delivers the outbox, so this command does, for
up to `--deliver` seconds: a cron line then also sends the alerts `errauto
apply` runs left behind.
"""
from __future__ import annotations

from argparse import Namespace

from errauto_daemon import health, output
from errauto_daemon.presence import running_pid
from errauto_daemon.store import Store


def monitor(*, as_json: bool, deliver: float = 10.0) -> int:
    store = Store()
    pid = running_pid()
    delivered: bool | None = None
    if pid is None and deliver > 0:
        # What is waiting first, so the outbox is judged after this run's own delivery.
        delivered = _deliver(store, deliver)
    found, alert = health.check(store, daemon_pid=pid, thresholds=health.configured_thresholds(store))
    if alert is not None and pid is None and deliver > 0:
        delivered = _deliver(store, deliver)
    if as_json:
        out = found.to_json()
        out["alert"] = store.alerts(1, after=alert - 1)[0].kind if alert else None
        out["delivered_here"] = delivered
        print(output.dumps(out))
        return found.exit_code
    print(f"errauto monitor: {found.level}")
    for c in found.criteria:
        print(f"  {c.level:<9} {c.name:<9} {c.text}{c.limits_text()}")
    if alert is not None:
        print(f"alert raised: monitor_{found.level} (the level changed)")
    if delivered is False:
        print("some alerts are still undelivered (see `errauto status`)")
    return found.exit_code


def _deliver(store: Store, seconds: float) -> bool | None:
    from errauto_daemon import notify

    if not store.unrouted_alerts(1) and not store.pending_sinks():
        return True  # nothing to deliver: do not even import requests
    return notify.flush(store, seconds)


# -- the command line (main.py dispatches each parsed command here) --------------

def cli(args: Namespace) -> int:
    """`errauto monitor`."""
    return monitor(as_json=args.json, deliver=args.deliver)
