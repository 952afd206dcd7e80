"""`errauto status`: how many submissions are where."""
from __future__ import annotations

import time

from errauto_daemon import output
from errauto_daemon.store import STATES, Store


def status(*, as_json: bool) -> int:
    store = Store()
    counts = store.counts()
    pending = store.conn.execute(
        "SELECT COUNT(*), MIN(created_at) FROM submissions WHERE state IN ('queued', 'validating', "
        "'awaiting_review')").fetchone()
    oldest = (time.time() - pending[1]) if pending[1] is not None else None
    if as_json:
        print(output.dumps({"states": counts["state"], "routes": counts["route"],
                            "pending": pending[0], "oldest_pending_seconds": oldest}))
        return 0
    total = sum(counts["state"].values())
    print(f"{total} submissions; {pending[0]} pending"
          + (f", oldest {output.age(oldest)}" if oldest is not None else ""))
    print(output.table(["STATE", "COUNT"], [[s, str(counts["state"][s])] for s in STATES]))
    if counts["route"]:
        print()
        print(output.table(["ROUTE", "COUNT"], [[r, str(n)] for r, n in sorted(counts["route"].items())]))
    return 0
