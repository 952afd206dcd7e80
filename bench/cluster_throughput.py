"""Throughput against the number of workers sharing one PostgreSQL state, with a check that sleeps.

Each worker is a "machine": its own state directory, its own clone of one
bare remote (`push = "origin"`), and a daemon with one slot. The only check
sleeps one second, so the CPU of this 2-core machine is not what limits a
worker; the ideal is `workers x 3600` patches an hour. Patches are submitted
on every worker at once (`errauto submit`, several files per call) once
every daemon is ready, and the clock stops when the last is decided.

With `--intake inbox` the patch files are renamed into every worker's inbox
folder instead (no process starts; the daemons take them).

Two kinds of patch, each its own series:

  review     the check fails, so every patch is decided without a merge:
             what the workers validate, in parallel
  merge      the check passes and every patch merges (each adds its own
             file): merges into one target are serialised across machines,
             and a patch whose target moved while it was validated is
             validated again before it merges

and beside them the SQLite file with one daemon of one slot, the embedded
default, on the same patches.

    python bench/cluster_throughput.py [--workers 1 2 4 8] [--per-worker 8] [--kinds review merge]

Checks run with `sandbox = "off"`: this measures the queue, not bubblewrap.
Nothing is asserted; docs/performance.md records results.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHECK = {"review": "sleep 1; exit 1", "merge": "sleep 1"}


def config(kind: str) -> str:
    return ('target = "main"\npush = "origin"\nsandbox = "off"\nmax_revalidations = 50\n'
            f'[checks.tests]\ncommand = ["sh", "-c", "{CHECK[kind]}"]\n')


@dataclass
class Run:
    seconds: float  # from the first submission to the last decision
    validation: float  # median seconds from a claim to its decision
    steady: float  # decisions an hour after the first, to the last (the pipeline full)


def run(work: Path, *, workers: int, patches: int, kind: str, url: str | None, intake: str) -> Run:
    from errauto_daemon.store import DECIDED, Store
    from tests.helpers.daemon import DaemonProcess
    from tests.helpers.gitrepo import git, python_project

    seed = python_project(work / "seed", config=config(kind))
    remote = work / "remote.git"
    git(work, "clone", "-q", "--bare", str(seed.path), str(remote))
    base = {**os.environ, "HOME": str(work / "home"), "GIT_CONFIG_NOSYSTEM": "1"}
    base.pop("ERRAUTO_DATABASE_URL", None)
    (work / "home").mkdir()
    (work / "home" / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n")
    machines = []
    for i in range(workers):
        env = {**base, "ERRAUTO_HOME": str(work / f"m{i}" / "state"), "XDG_CACHE_HOME": str(work / f"m{i}" / "cache")}
        if url is not None:
            env["ERRAUTO_DATABASE_URL"] = url
        clone = work / f"m{i}" / "clone"
        git(work, "clone", "-q", str(remote), str(clone))
        subprocess.run([sys.executable, "-m", "errauto_daemon", "watch", "add", str(clone)], env=env, check=True,
                       capture_output=True)
        machines.append((env, clone))
    files: list[list[Path]] = [[] for _ in machines]
    (work / "out").mkdir()
    for n in range(patches):
        path = work / "out" / f"p{n:03d}.patch"
        path.write_bytes(seed.make_patch({f"notes/n{n:03d}.txt": f"note {n}\n"}))
        files[n % workers].append(path)
    daemons = [DaemonProcess(work / f"m{i}" / "daemon.log", workers=1, grace=5.0, rescan=30.0, env=env)
               for i, (env, _) in enumerate(machines)]
    try:
        for d in daemons:
            d.start()
        store = Store(url if url is not None else Path(machines[0][0]["ERRAUTO_HOME"]) / "errauto.db")
        started = time.perf_counter()
        if intake == "inbox":  # dropped into every machine's inbox folder, the safe way (renamed in)
            for (_, clone), mine in zip(machines, files):
                for path in mine:
                    os.rename(path, clone / "patches" / path.name)
        else:
            sending = [subprocess.Popen([sys.executable, "-m", "errauto_daemon", "submit", *map(str, mine),
                                         "--repo", str(clone)], env=env, stdout=subprocess.DEVNULL)
                       for (env, clone), mine in zip(machines, files)]  # every machine's intake at once
            if any(p.wait() != 0 for p in sending):
                raise RuntimeError("errauto submit failed")
        while True:
            subs = store.submissions(limit=10_000)
            if len(subs) == patches and all(s.state in DECIDED for s in subs):
                elapsed = time.perf_counter() - started
                break
            if time.perf_counter() - started > 1800:
                raise RuntimeError("not decided within 30 minutes")
            time.sleep(0.1)
        took = sorted(float(r[0]) for r in store.sql(
            "SELECT duration FROM events WHERE kind = 'state' AND duration IS NOT NULL"))
        first = min(s.decided_at or 0.0 for s in subs)
        last = max(s.decided_at or 0.0 for s in subs)
        want = "merged" if kind == "merge" else "awaiting_review"
        wrong = [(s.id, s.state, s.reason) for s in subs if s.state != want]
        if wrong:
            raise RuntimeError(f"not all {want}: {wrong[:3]}")
        store.close()
        return Run(elapsed, took[len(took) // 2], (patches - workers) / (last - first) * 3600)
    finally:
        for d in daemons:
            try:
                d.terminate(timeout=30)
            except Exception:
                d.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--per-worker", type=int, default=8, help="patches per worker (at least 16 in all)")
    parser.add_argument("--kinds", nargs="+", default=["review", "merge"], choices=sorted(CHECK))
    parser.add_argument("--intake", default="submit", choices=["submit", "inbox"],
                        help="`errauto submit` on every worker at once, or files renamed into their inboxes")
    args = parser.parse_args()

    import psycopg

    from errauto_daemon.store import Store
    from tests.helpers.postgres import PostgresServer

    server = PostgresServer.create()
    runs = 0
    try:
        for kind in args.kinds:
            print(f"{kind}: the check {'fails (decided without a merge)' if kind == 'review' else 'passes (merged)'}")
            print(f"  {'backend':<11} {'workers':>7} {'patches':>7} {'seconds':>8} {'per hour':>9} "
                  f"{'ideal':>7} {'of ideal':>8} {'steady':>7} {'of ideal':>8} {'validation':>10}")
            series = [("sqlite", 1)] + [("postgresql", w) for w in args.workers]
            for backend, workers in series:
                patches = max(16, args.per_worker * workers)
                work = Path(tempfile.mkdtemp(prefix="errauto-bench-cluster-"))
                url = None
                if backend == "postgresql":
                    runs += 1
                    with psycopg.connect(server.url, autocommit=True) as conn:
                        conn.execute(f"CREATE SCHEMA bench{runs}")
                    url = f"{server.url}&options=-csearch_path%3Dbench{runs}"
                    Store(url, migrate=True).close()
                try:
                    done = run(work, workers=workers, patches=patches, kind=kind, url=url, intake=args.intake)
                finally:
                    if not os.environ.get("BENCH_KEEP"):  # a failed run's folder, to look at
                        shutil.rmtree(work, ignore_errors=True)
                per_hour = patches / done.seconds * 3600
                ideal = workers * 3600
                print(f"  {backend:<11} {workers:>7} {patches:>7} {done.seconds:>8.1f} {per_hour:>9.0f} "
                      f"{ideal:>7} {per_hour / ideal:>7.0%} {done.steady:>7.0f} {done.steady / ideal:>7.0%} "
                      f"{done.validation:>9.2f}s", flush=True)
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
