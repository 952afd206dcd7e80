"""`errauto status --days 30` and `errauto monitor` on a database with 100,000 events.

Fills a fresh state database with realistic history: submissions with the
life cycles the pipeline produces (auto-merged, pull requests later merged
or closed, reviews approved or rejected, rejections at intake, failures
after requeues, duplicates, revalidations), their checks, explanations of
realistic size, and their alerts with deliveries (a few still pending).
Then times, in this process and interleaved run by run:

  status    metrics.collect over the window (what `status` prints)
  monitor   health.check: assess every criterion and record the level
  naive     the same numbers from every row loaded into Python (SELECT *),
            the obvious way to write it

and the CLI end to end (`python -m errauto_daemon status --days 30 --json`,
`python -m errauto_daemon monitor --json --deliver 0`), which adds the
interpreter, imports and loading the registered repository's config.

    python bench/status_speed.py [--events 100000] [--spread 30] [--runs 15]

`--spread` is how many days the history covers; 30 (the default) puts all
of it inside `--days 30`, the worst case. Nothing is asserted;
docs/performance.md records results.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DAY = 86400.0
DECIDED = ("merged", "pr_open", "awaiting_review", "rejected", "failed")


def explanation(route: str, conf: float, rng: random.Random) -> str:
    parts = [{"check": name, "status": "passed" if rng.random() < 0.9 else "failed", "weight": w,
              "contribution": round(w * conf, 4), "detail": "exit 0", "duration": round(rng.uniform(0.5, 90), 3)}
             for name, w in (("tests", 0.4), ("lint", 0.2), ("typecheck", 0.15), ("security", 0.15),
                             ("coverage", 0.1))]
    return json.dumps({"confidence": conf, "route": route, "reason": f"confidence {conf:.2f}", "parts": parts,
                       "gates": [], "margins": {"auto_merge": conf - 0.95, "pull_request": conf - 0.8},
                       "thresholds": {"auto_merge": 0.95, "pull_request": 0.8}, "notes": [],
                       "review_only": [], "base": "0" * 40, "attempt": 1,
                       "timings": {"apply": 0.002, "worktree": 0.017, "checks": 12.5, "score": 0.0002}})


def populate(db: Path, events_wanted: int, spread_days: float, seed: int = 7) -> dict[str, int]:
    """Write a realistic history straight into the schema errauto created."""
    import sqlite3

    rng = random.Random(seed)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous = OFF")
    now = time.time()
    subs: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    checks: list[tuple[Any, ...]] = []
    outbox: list[tuple[Any, ...]] = []
    deliveries: list[tuple[Any, ...]] = []
    sources = ("inbox",) * 5 + ("pre-commit",) * 2 + ("post-receive",) * 2 + ("cli", "ref")
    repos = ("/srv/git/api", "/srv/git/web", "/srv/git/worker")
    levels = {"auto_merged": "info", "merged": "info", "pr_opened": "info", "review_needed": "warning",
              "rejected": "info", "daemon_error": "critical", "auto_merge_failed": "warning"}
    sub_id = 0
    n_events = 0

    def alert(kind: str, sid: int, ts: float, row: dict[str, Any]) -> None:
        alert_id = len(outbox) + 1
        outbox.append((alert_id, ts, kind, levels[kind], sid, row["repo"], "main",
                       json.dumps({"title": row["title"], "route": row["route"], "confidence": row["conf"],
                                   "state": row["state"], "reason": row["reason"]}), ts + 0.3, "jsonl,slack:SLACK_WEBHOOK_URL"))
        pending = now - ts < 120 and rng.random() < 0.5
        for sink in ("jsonl", "slack:SLACK_WEBHOOK_URL"):
            state = "pending" if pending and sink != "jsonl" else "sent"
            deliveries.append((alert_id, sink, state, 1, ts, None, None if state == "pending" else ts + 0.5))

    while n_events < events_wanted:
        sub_id += 1
        created = now - rng.uniform(0, spread_days * DAY)
        took = rng.lognormvariate(3.0, 0.8)  # seconds to validate: median ~20 s, long tail
        wait = rng.expovariate(1 / 5)  # seconds queued
        fate = rng.random()
        row: dict[str, Any] = {"repo": rng.choice(repos), "title": f"Fix issue {sub_id}: {'x' * rng.randint(10, 60)}",
                               "source": rng.choice(sources), "conf": None, "route": None, "reason": None}
        evs: list[tuple[float, str | None, str, str | None, str | None]] = [(created, None, "queued", None, row["source"])]
        t = created + wait
        alerts: list[tuple[str, float]] = []
        if fate < 0.05:  # rejected at intake
            evs = [(created, None, "rejected", "rejected", "malformed patch")]
            row.update(state="rejected", route="rejected", reason="no diff found")
            alerts.append(("rejected", created))
        elif fate < 0.07:  # interrupted, then failed
            evs += [(t, "queued", "validating", None, None), (t + 5, "validating", "queued", None, "interrupted"),
                    (t + 6, "queued", "validating", None, None), (t + 6 + took, "validating", "failed", None, None)]
            row.update(state="failed", reason="internal error: OSError")
            alerts.append(("daemon_error", t + 6 + took))
        elif now - created < 300 and fate < 0.5:  # still in the queue
            row.update(state="queued" if fate < 0.3 else "validating")
            if row["state"] == "validating":
                evs.append((t, "queued", "validating", None, None))
        else:
            evs.append((t, "queued", "validating", None, None))
            done = t + took
            if rng.random() < 0.03:
                events.append((sub_id, done - 1, "revalidate", None, None, None, "main moved", None))
            r = rng.random()
            if r < 0.50:
                conf = round(rng.uniform(0.95, 1.0), 3)
                row.update(state="merged", route="auto_merge", conf=conf, reason="clears auto-merge")
                evs.append((done, "validating", "merged", "auto_merge", None))
                alerts.append(("auto_merged", done))
            elif r < 0.62:
                conf = round(rng.uniform(0.8, 0.95), 3)
                row.update(state="pr_open", route="pull_request", conf=conf, reason="pull request #1 opened")
                evs.append((done, "validating", "pr_open", "pull_request", None))
                alerts.append(("pr_opened", done))
                if rng.random() < 0.7 and done + 3600 < now:
                    row["state"] = "merged" if rng.random() < 0.85 else "rejected"
                    evs.append((done + rng.uniform(600, 3000), "pr_open", row["state"], None, "followed"))
                    alerts.append(("merged" if row["state"] == "merged" else "rejected", done + 3000))
            elif r < 0.85:
                conf = round(rng.uniform(0.1, 0.8), 3)
                row.update(state="awaiting_review", route="review", conf=conf, reason="below the PR threshold")
                evs.append((done, "validating", "awaiting_review", "review", None))
                alerts.append(("review_needed", done))
                later = rng.random()
                person = done + rng.uniform(600, 2 * DAY)
                if person < now and later < 0.6:
                    evs += [(person, "awaiting_review", "validating", None, "approved by dev"),
                            (person + 2, "validating", "merged", None, "approved by dev")]
                    row["state"] = "merged"
                    alerts.append(("merged", person + 2))
                elif person < now and later < 0.8:
                    evs.append((person, "awaiting_review", "rejected", None, "rejected by dev"))
                    row["state"] = "rejected"
                    alerts.append(("rejected", person))
            else:
                conf = round(rng.uniform(0.0, 0.5), 3)
                row.update(state="rejected", route="rejected", conf=conf, reason="does not apply")
                evs.append((done, "validating", "rejected", "rejected", None))
                alerts.append(("rejected", done))
            for name in ("tests", "lint", "typecheck", "security", "coverage")[: rng.randint(2, 5)]:
                checks.append((sub_id, 1, name, "passed", 0, took / 5, 1.0, 0.2, "exit 0",
                               f"/state/checks/{sub_id}/1-{name}.log", "0" * 40, done))
        if rng.random() < 0.05:
            events.append((sub_id, created + 60, "duplicate", None, None, None, "inbox: again.patch", None))
        began = None
        for ts, frm, to, route, detail in evs:
            took_now = ts - began if frm == "validating" and began is not None else None
            events.append((sub_id, ts, "state", frm, to, route, detail, took_now))
            if to == "validating":
                began = ts
        n_events = len(events)
        last = max(ts for ts, *_ in evs)
        decided_at = last if row["state"] in DECIDED else None
        subs.append((sub_id, row["repo"], "main", row["source"], "patch.patch", row["title"], "Dev <dev@example.com>",
                     "p" * 64, f"patch-id:{sub_id:040x}", row["state"], row["route"], row["conf"],
                     explanation(row["route"] or "review", row["conf"] or 0.0, rng) if row["conf"] is not None else None,
                     row["reason"], created, last, decided_at))
        for kind, ts in alerts:
            alert(kind, sub_id, ts, row)

    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO submissions (id, repo, target, source, source_detail, title, author, patch_sha256, dedup_key, "
        "state, route, confidence, explanation, reason, created_at, updated_at, decided_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", subs)
    events.sort(key=lambda e: e[1])  # ids in time order, as the daemon writes them
    conn.executemany("INSERT INTO events (submission_id, ts, kind, from_state, to_state, route, detail, duration) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
    conn.executemany("INSERT INTO checks (submission_id, attempt, name, status, exit_code, duration, score, "
                     "weight, detail, log_path, base_commit, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     checks)
    conn.executemany("INSERT INTO outbox (id, created_at, kind, level, submission_id, repo, target, data, "
                     "routed_at, sinks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", outbox)
    conn.executemany("INSERT INTO deliveries (alert_id, sink, state, attempts, next_at, error, done_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", deliveries)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return {"submissions": len(subs), "events": len(events), "checks": len(checks), "alerts": len(outbox),
            "deliveries": len(deliveries)}


# --------------------------------------------------------------------------
# the naive way: every row into Python


def naive_status(db: Path, days: int) -> dict[str, Any]:
    import sqlite3

    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    now = time.time()
    since = now - days * DAY
    subs = [dict(r) for r in conn.execute("SELECT * FROM submissions")]
    events = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]
    outbox = [dict(r) for r in conn.execute("SELECT * FROM outbox")]
    deliveries = [dict(r) for r in conn.execute("SELECT * FROM deliveries")]
    conn.close()
    window = [s for s in subs if s["created_at"] >= since]
    routes: dict[str, int] = {}
    sources: dict[str, int] = {}
    for s in window:
        if s["route"]:
            routes[s["route"]] = routes.get(s["route"], 0) + 1
        sources[s["source"]] = sources.get(s["source"], 0) + 1
    decided = [s for s in window if s["state"] in DECIDED]
    auto = [s for s in decided if s["state"] == "merged" and s["route"] == "auto_merge"]
    conf = sorted(s["confidence"] for s in window if s["confidence"] is not None)
    began: dict[int, float] = {}
    durations = []
    per_day: dict[str, int] = {}
    for e in events:
        if e["kind"] != "state":
            continue
        if e["to_state"] == "validating":
            began[e["submission_id"]] = e["ts"]
        if e["ts"] >= since and e["to_state"] in DECIDED and e["from_state"] in ("validating", None):
            if e["from_state"] == "validating":
                durations.append(e["ts"] - began[e["submission_id"]])
            day = time.strftime("%Y-%m-%d", time.localtime(e["ts"]))
            per_day[day] = per_day.get(day, 0) + 1
    durations.sort()
    pending_alerts = {d["alert_id"] for d in deliveries if d["state"] == "pending"}
    pending_alerts |= {o["id"] for o in outbox if o["routed_at"] is None}
    queue = [s for s in subs if s["state"] in ("queued", "validating")]
    return {"submissions": len(window), "routes": routes, "sources": sources, "auto_merged": len(auto),
            "decided": len(decided), "confidence_mean": statistics.fmean(conf) if conf else None,
            "median": statistics.median(conf) if conf else None, "validations": len(durations),
            "p95": durations[int(0.95 * (len(durations) - 1))] if durations else None,
            "decisions": sum(per_day.values()), "queue": len(queue), "undelivered": len(pending_alerts)}


def naive_monitor(db: Path) -> str:
    import sqlite3

    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    now = time.time()
    subs = [dict(r) for r in conn.execute("SELECT * FROM submissions")]
    events = [dict(r) for r in conn.execute("SELECT * FROM events")]
    outbox = [dict(r) for r in conn.execute("SELECT * FROM outbox")]
    deliveries = [dict(r) for r in conn.execute("SELECT * FROM deliveries")]
    conn.close()
    waiting = [s for s in subs if s["state"] == "awaiting_review"]
    hour = [e for e in events if e["kind"] == "state" and e["ts"] >= now - 3600
            and e["to_state"] in DECIDED and e["from_state"] in ("validating", None)]
    failed = sum(e["to_state"] == "failed" for e in hour)
    created = {o["id"]: o["created_at"] for o in outbox}
    pending = [created[d["alert_id"]] for d in deliveries if d["state"] == "pending"]
    level = 0
    level = max(level, 2 if len(waiting) >= 50 else 1 if len(waiting) >= 10 else 0)
    if waiting:
        age = now - min(s["created_at"] for s in waiting)
        level = max(level, 2 if age >= 72 * 3600 else 1 if age >= 24 * 3600 else 0)
    if len(hour) >= 3:
        rate = failed / len(hour)
        level = max(level, 2 if rate >= 0.5 else 1 if rate >= 0.2 else 0)
    if pending:
        age = now - min(pending)
        level = max(level, 2 if age >= 3600 else 1 if age >= 600 else 0)
    return ("ok", "warning", "critical")[level]


# --------------------------------------------------------------------------


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f} ms (p95 {sorted(values)[int(0.95 * (len(values) - 1))] * 1000:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--spread", type=float, default=30.0, help="days the history covers (default 30)")
    parser.add_argument("--days", type=int, default=30, help="the status window (default 30)")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the temporary state directory")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="errauto-bench-status-"))
    os.environ["ERRAUTO_HOME"] = str(home / "state")
    from errauto_daemon import health, metrics
    from errauto_daemon.store import Store

    # A registered repository with a config, as in real use: `status` reads its
    # minutes per patch and `monitor` its thresholds.
    repo = home / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (repo / ".errauto.toml").write_text('target = "main"\n[monitor]\nbacklog_warning = 20\n'
                                        '[status]\nminutes_per_manual_patch = 20\n')
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    store = Store()
    store.add_repo(str(repo))
    store.close()

    started = time.perf_counter()
    sizes = populate(store.path, args.events, args.spread)
    print(f"populated in {time.perf_counter() - started:.1f} s: " + ", ".join(f"{v:,} {k}" for k, v in sizes.items())
          + f"; database {store.path.stat().st_size / 1e6:.0f} MB; history over {args.spread:g} days, "
            f"window {args.days} days")

    thresholds = health.configured_thresholds(Store())
    minutes = {str(repo): 20.0}
    timings: dict[str, list[float]] = {k: [] for k in ("status", "naive status", "monitor", "naive monitor",
                                                        "status CLI", "monitor CLI")}
    # The CLI as installed: bytecode cached (a first run writes it).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for cmd in (["status", "--json"], ["monitor", "--json", "--deliver", "0"]):
        subprocess.run([sys.executable, "-m", "errauto_daemon", *cmd], env=env, stdout=subprocess.DEVNULL)
    for run in range(args.runs):
        s = Store()  # a fresh connection per run, as each command opens one
        t = time.perf_counter()
        ours = metrics.collect(s, args.days, minutes=minutes)
        timings["status"].append(time.perf_counter() - t)
        t = time.perf_counter()
        naive = naive_status(s.path, args.days)
        timings["naive status"].append(time.perf_counter() - t)
        t = time.perf_counter()
        found, _ = health.check(s, daemon_pid=None, thresholds=thresholds)
        timings["monitor"].append(time.perf_counter() - t)
        t = time.perf_counter()
        naive_level = naive_monitor(s.path)
        timings["naive monitor"].append(time.perf_counter() - t)
        s.close()
        if run < 7:
            for name, cmd in (("status CLI", ["status", "--days", str(args.days), "--json"]),
                              ("monitor CLI", ["monitor", "--json", "--deliver", "0"])):
                t = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "errauto_daemon", *cmd], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                timings[name].append(time.perf_counter() - t)
                assert proc.returncode in (0, 1, 2), proc.stderr
        if run == 0:
            counted = ours.submissions
            same = (counted.total, counted.auto_merged, counted.decided, counted.routes, counted.sources,
                    ours.validation_seconds.count, ours.throughput.decided, ours.queue.depth,
                    ours.alerts.undelivered) == (
                naive["submissions"], naive["auto_merged"], naive["decided"], naive["routes"], naive["sources"],
                naive["validations"], naive["decisions"], naive["queue"], naive["undelivered"])
            print(f"errauto and naive agree on every count: {same}; level: {found.level} / naive "
                  f"{naive_level} (the daemon criterion aside)")
            if not same:
                print(json.dumps({"errauto": {k: ours.to_json()[k] for k in ("submissions", "auto_merged", "decided")},
                                  "naive": naive}, indent=1, default=str))

    print()
    for name in ("status", "naive status", "monitor", "naive monitor", "status CLI", "monitor CLI"):
        print(f"{name:<14} {ms(timings[name])}")
    print()
    print(f"status:  {statistics.median(timings['naive status']) / statistics.median(timings['status']):.1f}x "
          f"faster than naive in-process; CLI end to end {statistics.median(timings['status CLI']) * 1000:.0f} ms")
    print(f"monitor: {statistics.median(timings['naive monitor']) / statistics.median(timings['monitor']):.1f}x "
          f"faster than naive in-process; CLI end to end {statistics.median(timings['monitor CLI']) * 1000:.0f} ms")
    if args.keep:
        print(f"kept: {home}")
    else:
        import shutil

        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
