"""Delivering the outbox: to `alerts.jsonl` and to a Slack incoming webhook.

Alerts are written into the outbox by the state change that causes them
(store.py), in its transaction. Delivering them is this module's job, done
by one sender at a time: the daemon's `alerts` thread, or `errauto monitor`
when no daemon runs. Which one is decided by a flock (`locks/outbox.lock`),
so it dies with its holder and a restarted sender takes over at once.

    route     each new alert is given its sinks once: "jsonl" and/or
              "slack:<ENV>", from its repository's `[alerts]` (an alert about
              no submission: every registered repository's), and only if the
              webhook variable is set in the sender's environment
    deliver   each sink's pending deliveries, oldest first:
              jsonl   appended under an flock, fsynced; a torn last line left
                      by a crash stays alone on its line (readers skip it)
              slack   a burst becomes one message (at most `batch` alerts, at
                      most one message a second per webhook); 429: wait its
                      Retry-After; 5xx, timeouts, connection errors: back off
                      exponentially; other answers (404, 400, 403, 410...):
                      not retried, recorded as failed with Slack's word;
                      `breaker_after` failures in a row open the circuit for
                      `breaker_cooldown` seconds, then one message tries again

A delivery is marked sent only after the sink took it, so a sender killed in
between sends it again after the restart: at least once, never lost. Every
JSON line carries the alert's `id`, so a reader can drop such duplicates.

The webhook URL is read from the environment when a message is sent and
is never written anywhere: errors are described in errauto's own words
(never a library's message, which quotes the URL's path), and everything
written goes through `redact`.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from errauto_daemon import paths
from errauto_daemon.alert_text import jsonl_record, slack_message
from errauto_daemon.http import retry_after as retry_after
from errauto_daemon.locks import FileLock
from errauto_daemon.redact import SECRETS, redact, redact_loggers
from errauto_daemon.store import Alert, Store

if TYPE_CHECKING:
    import requests

    from errauto_daemon.config import AlertsConfig

log = logging.getLogger("errauto.notify")

JSONL = "jsonl"
SLACK = "slack:"
ROUTE_BATCH = 200  # alerts routed per pass


def alerts_path() -> Path:
    return paths.state_dir() / "alerts.jsonl"


# --------------------------------------------------------------------------
# alerts.jsonl

def append_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append one JSON object per line, under an exclusive flock, fsynced.

    A writer killed mid-line leaves a torn last line; the next append starts
    on a fresh line, so the damage stays on that line (readers skip it).
    """
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode()
    if not data:
        return
    with FileLock(path) as lock:
        fd = lock.fd
        size = os.lseek(fd, 0, os.SEEK_END)  # every writer holds the lock: the end stays the end
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete record; torn or otherwise unreadable lines are skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


# --------------------------------------------------------------------------
# routing: which sinks an alert goes to

ConfigLoader = Callable[[str, str | None], "AlertsConfig"]


class Router:
    """Gives each alert its sinks, from the `[alerts]` of its repository.

    Configurations are read from the target's committed tree (as everywhere)
    and kept `ttl` seconds. An alert about no submission goes where any
    registered repository sends that kind of alert.
    """

    def __init__(self, store: Store, *, env: Mapping[str, str] | None = None, ttl: float = 30.0,
                 loader: ConfigLoader | None = None) -> None:
        self.store = store
        self.env = os.environ if env is None else env
        self.ttl = ttl
        self.loader = loader or _load_alerts_config
        self._cache: dict[tuple[str, str | None], tuple[float, AlertsConfig]] = {}

    def sinks(self, alert: Alert) -> list[str]:
        out: list[str] = []
        for conf in self._configs(alert):
            if not conf.enabled(alert.kind):
                continue
            if conf.jsonl:
                out.append(JSONL)
            if self.env.get(conf.webhook_env):
                out.append(SLACK + conf.webhook_env)
        return list(dict.fromkeys(out))

    def _configs(self, alert: Alert) -> list[AlertsConfig]:
        if alert.repo is not None:
            return [self._config(self._clone(alert), alert.target)]
        repos = self.store.repos()
        return [self._config(r, None) for r in repos] or [self._default()]

    def _clone(self, alert: Alert) -> str:
        """Where to read the alert's repository's `[alerts]`: on a state machines share, this
        machine's clone of the submission's remote (the recording machine's path is its own)."""
        assert alert.repo is not None
        if not self.store.shared or alert.submission_id is None:
            return alert.repo
        remote = self.store.get(alert.submission_id).remote
        return (self.store.clone_of(remote) if remote else None) or alert.repo

    def _config(self, repo: str, target: str | None) -> AlertsConfig:
        key = (repo, target)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            conf = self.loader(repo, target)
        except Exception as exc:  # a repository gone or misconfigured: alerts still go out
            log.warning("alerts of %s use the default [alerts]: %s", repo, redact(str(exc)))
            conf = self._default()
        self._cache[key] = (now, conf)
        return conf

    @staticmethod
    def _default() -> AlertsConfig:
        from errauto_daemon.config import AlertsConfig

        return AlertsConfig()


def _load_alerts_config(repo: str, target: str | None) -> AlertsConfig:
    from errauto_daemon import config as config_mod
    from errauto_daemon.repo import open_repo

    return config_mod.load(open_repo(repo), target).alerts


# --------------------------------------------------------------------------
# the sender

@dataclass(frozen=True)
class Policy:
    timeout: tuple[float, float] = (5.0, 10.0)  # connect, read (seconds)
    min_interval: float = 1.0  # between two messages to one webhook: bursts are coalesced
    batch: int = 20  # alerts in one message at most
    backoff: float = 2.0  # the first retry after a 5xx or a timeout; doubles each time
    max_backoff: float = 300.0
    default_retry_after: float = 30.0  # a 429 without Retry-After
    max_retry_after: float = 900.0
    breaker_after: int = 5  # failed messages in a row that open the circuit
    breaker_cooldown: float = 300.0  # how long it stays open


@dataclass
class _SinkState:
    failures: int = 0
    next_at: float = 0.0  # wall clock: nothing is sent before
    open_until: float | None = None
    last_error: str | None = None
    last_ok_at: float | None = None


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    retry: bool  # not ok: whether it may be sent again
    error: str | None = None
    wait: float | None = None  # a 429's Retry-After


class Sender:
    """Routes and delivers the outbox; call `deliver_due` repeatedly (one thread)."""

    def __init__(self, store: Store, *, policy: Policy = Policy(), router: Router | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.policy = policy
        self.env = os.environ if env is None else env
        self.router = router or Router(store, env=self.env)
        self._states: dict[str, _SinkState] = {}
        self._last_post: dict[str, float] = {}  # monotonic
        self._session: requests.Session | None = None

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def deliver_due(self) -> float | None:
        """Route new alerts and deliver whatever is due now.

        Returns how many seconds until something is due again (0: more is due
        now), or None when nothing is pending.
        """
        unrouted = self.store.unrouted_alerts(ROUTE_BATCH)
        if unrouted:
            self.store.route_alerts({a.id: self.router.sinks(a) for a in unrouted})
        for sink, first_due in self.store.pending_sinks().items():
            now = time.time()
            if first_due > now:
                continue
            if sink == JSONL:
                self._jsonl(now)
            elif sink.startswith(SLACK) and self._ready(sink, now):
                self._slack(sink, now)
        if len(unrouted) == ROUTE_BATCH:
            return 0.0  # more to route
        now = time.time()
        waits = [max(first_due, self._not_before(sink, now)) - now
                 for sink, first_due in self.store.pending_sinks().items()]
        return max(0.0, min(waits)) if waits else None

    def drain(self, seconds: float) -> bool:
        """Deliver until nothing is pending (True) or `seconds` would pass (False)."""
        deadline = time.monotonic() + seconds
        while True:
            wait = self.deliver_due()
            if wait is None:
                return True
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)

    # -- alerts.jsonl -------------------------------------------------------------

    def _jsonl(self, now: float) -> None:
        alerts = self.store.claim_deliveries(JSONL, now, 500)
        if not alerts:
            return
        ids = [a.id for a in alerts]
        try:
            append_jsonl(alerts_path(), (json.loads(redact(json.dumps(jsonl_record(a)))) for a in alerts))
        except OSError as exc:
            why = f"cannot append to {alerts_path()}: {exc.strerror or type(exc).__name__}"
            log.warning("%s", why)
            self.store.delivery_deferred(JSONL, ids, why, now + 5.0)
            return
        self.store.delivered(JSONL, ids)

    # -- Slack --------------------------------------------------------------------

    def _state(self, sink: str) -> _SinkState:
        state = self._states.get(sink)
        if state is None:
            row = self.store.sink_state(sink)
            state = self._states[sink] = _SinkState(row["failures"], row["next_at"], row["open_until"],
                                                    row["last_error"], row["last_ok_at"])
        return state

    def _save(self, sink: str, state: _SinkState) -> None:
        self.store.set_sink_state(sink, failures=state.failures, next_at=state.next_at,
                                  open_until=state.open_until, last_error=state.last_error,
                                  last_ok_at=state.last_ok_at)

    def _not_before(self, sink: str, now: float) -> float:
        """The earliest (wall clock) time the next message may go to `sink`."""
        if not sink.startswith(SLACK):
            return now
        state = self._state(sink)
        last = self._last_post.get(sink)
        pace = now if last is None else now + self.policy.min_interval - (time.monotonic() - last)
        return max(now, state.next_at, pace)

    def _ready(self, sink: str, now: float) -> bool:
        return self._not_before(sink, now) <= now

    def _slack(self, sink: str, now: float) -> None:
        state = self._state(sink)
        alerts = self.store.claim_deliveries(sink, now, self.policy.batch)
        if not alerts:
            return
        ids = [a.id for a in alerts]
        env_name = sink[len(SLACK):]
        SECRETS.add([env_name])
        url = self.env.get(env_name)
        if not url:
            self.store.delivered(sink, ids, failed=f"{env_name} is not set in the sender's environment")
            return
        self._last_post[sink] = time.monotonic()
        outcome = self._post(url, slack_message(alerts))
        now = time.time()
        if outcome.ok:
            self.store.delivered(sink, ids)
            if state.failures or state.open_until:
                log.info("alerts to %s are delivered again", sink)
            state.failures, state.next_at, state.open_until = 0, 0.0, None
            state.last_ok_at, state.last_error = now, None
            self._save(sink, state)
            return
        state.last_error = outcome.error
        if outcome.wait is not None:  # rate limited: not a failure of the webhook
            state.next_at = now + outcome.wait
            self.store.delivery_deferred(sink, ids, outcome.error or "rate limited", state.next_at)
            log.warning("alerts to %s: %s", sink, outcome.error)
            self._save(sink, state)
            return
        state.failures += 1
        if state.failures >= self.policy.breaker_after:
            state.open_until = now + self.policy.breaker_cooldown
            state.next_at = state.open_until
            log.warning("alerts to %s: %s; %d failures in a row: circuit open for %gs", sink,
                        outcome.error, state.failures, self.policy.breaker_cooldown)
        else:
            state.next_at = now + min(self.policy.max_backoff,
                                      self.policy.backoff * 2 ** (state.failures - 1))
            log.warning("alerts to %s: %s%s", sink, outcome.error,
                        f"; next try in {state.next_at - now:.1f}s" if outcome.retry else "; not retried")
        if outcome.retry:
            self.store.delivery_deferred(sink, ids, outcome.error or "failed", state.next_at)
        else:
            self.store.delivered(sink, ids, failed=outcome.error or "failed")
        self._save(sink, state)

    def _post(self, url: str, payload: dict[str, Any]) -> _Outcome:
        """POST to the webhook; the outcome in errauto's words (never the URL)."""
        import requests

        if self._session is None:
            self._session = requests.Session()
            _redact_http_logs()
        try:
            resp = self._session.post(url, json=payload, timeout=self.policy.timeout, allow_redirects=False)
        except requests.Timeout:
            return _Outcome(False, True, "Slack did not answer in time")
        except requests.RequestException as exc:
            return _Outcome(False, True, f"cannot reach Slack ({type(exc).__name__})")
        body = redact(resp.text[:200].strip()) if resp.text else ""
        status = resp.status_code
        if 200 <= status < 300:
            return _Outcome(True, False)
        said = f"HTTP {status}" + (f": {body}" if body else "")
        if status == 429:
            wait = retry_after(resp.headers.get("Retry-After"), self.policy.default_retry_after)
            wait = min(wait, self.policy.max_retry_after)
            return _Outcome(False, True, f"rate limited by Slack ({said}); retry after {wait:g}s", wait)
        if status >= 500:
            return _Outcome(False, True, f"Slack failed ({said})")
        return _Outcome(False, False, f"Slack refused the message ({said})")


def _redact_http_logs() -> None:
    """urllib3 logs each request line at DEBUG ("POST /services/T.../B.../... HTTP/1.1"):
    redact its records at the source, whatever handlers the process has."""
    redact_loggers(("urllib3.connectionpool", "urllib3.util.retry", "urllib3"))


# --------------------------------------------------------------------------
# one sender at a time

class OutboxLock(FileLock):
    """The flock whoever delivers the outbox holds; it dies with its holder."""

    def __init__(self) -> None:
        super().__init__(paths.locks_dir() / "outbox.lock")


def flush(store: Store, seconds: float = 10.0, *, policy: Policy = Policy()) -> bool | None:
    """Deliver the outbox from this process (no daemon runs).

    None if another process is delivering it; else whether everything was
    delivered within `seconds`.
    """
    lock = OutboxLock()
    if not lock.acquire():
        return None
    sender = Sender(store, policy=policy)
    try:
        return sender.drain(seconds)
    finally:
        sender.close()
        lock.release()
