"""The errauto daemon: watch inboxes and refs, validate with a pool of workers.

Threads, and the module that owns each:

    main        lifecycle: the lock, signals, the scheduler loop: heartbeat,
                feeding queued submissions to workers, periodic rescans, recovery
    observer    watch: watchdog's; its handlers only enqueue paths, never work
    intake      watch: hands each dropped file and scan to its repository's lane
    intake-R    watch: repository R's lane: takes its files and scans its refs, one at a
                time (while it has work), so one repository never waits for another
    wake        control: reads the wake FIFO (`errauto submit` writes a byte there)
    worker-N    workers: one Validator each; validates, decides, settles inbox files
    pull-requests  workers: records pull requests merged or closed on GitHub
    alerts      alerts: delivers the outbox (notify.Sender: alerts.jsonl, Slack),
                turns logged errors into `daemon_error` alerts, and checks the
                monitor's level every minute; a worker never waits for it

Nothing is kept only in memory: the queue is the `queued` rows of the
database, so a submission recorded while no daemon runs is processed when
one starts, and a worker's in-memory queue can be lost without losing work.

One daemon per user: an exclusive flock on `daemon.lock`, held for the
daemon's whole life (a pid file could name a reused pid). The heartbeat row
in the database tells other commands whether it is alive
(`presence.heartbeat_fresh`).

SIGTERM / SIGINT: stop taking new work, let running validations finish for
most of `grace` seconds, then cancel their checks (process groups killed,
the submissions requeued, the attempt counted), and exit 0 within `grace`:
a thread still stuck then (in git, say) does not hold the exit
(`control.exit_now`). After a SIGKILL, the next start recovers: abandoned
submissions are requeued (or recorded merged when their merge had reached
the target), stale worktrees pruned.

Every path here that decides a submission (a worker, recovery, following
pull requests) hands it to `inbox.settle`.
"""
from __future__ import annotations

from errauto_daemon.daemon.alerts import ALERT_POLL, ERROR_ALERT_EVERY, MONITOR_EVERY
from errauto_daemon.daemon.control import daemon_status
from errauto_daemon.daemon.lifecycle import POLL, Daemon
from errauto_daemon.daemon.watch import OverflowRescan
from errauto_daemon.daemon.workers import FOLLOW_EVERY, MAX_ATTEMPTS
from errauto_daemon.presence import ALIVE_WITHIN
from errauto_daemon.presence import HEARTBEAT_EVERY as HEARTBEAT

__all__ = [
    "ALERT_POLL", "ALIVE_WITHIN", "ERROR_ALERT_EVERY", "FOLLOW_EVERY", "HEARTBEAT", "MAX_ATTEMPTS",
    "MONITOR_EVERY", "POLL", "Daemon", "OverflowRescan", "daemon_status",
]
