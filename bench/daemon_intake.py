"""The daemon, measured: drop-to-recorded latency, throughput, cache, memory.

Starts the real daemon (a subprocess) on a temporary repository and reports:

  latency     file renamed into the inbox -> submission recorded, p50 / p95 over
              N drops, beside a naive intake that polls the folder every second
              (run in this process on a second inbox, same drops)
  throughput  N patches with a 0.2 s check and 2 workers, dropped at once,
              against the ideal N x 0.2 s / 2
  cache       a patch identical to one already validated, submitted to a clone
              with the same tree: decided from the validation cache, beside the
              same validation done for real
  memory      the daemon's resident set size when idle

    python bench/daemon_intake.py [--drops 500] [--throughput 40]

Nothing is asserted; docs/performance.md records results.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(("git", *args), cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path, check: str) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README").write_text("bench\n")
    (path / ".errauto.toml").write_text(f'target = "main"\nworkers = 2\n[checks.tests]\ncommand = {check}\n')
    git(path, "add", "-A")
    git(path, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-q", "-m", "init")
    return path


def patch(repo: Path, i: int, *, fail: bool) -> bytes:
    note = repo / "notes" / f"n{i:05d}.txt"
    note.parent.mkdir(exist_ok=True)
    note.write_text(f"note {i}\n")
    extra = repo / "FAILED"
    if fail:
        extra.write_text(f"{i}\n")
    git(repo, "add", "-A")
    data = subprocess.run(("git", "diff", "--cached"), cwd=repo, check=True, capture_output=True).stdout
    git(repo, "reset", "-q", "--hard", "HEAD")
    git(repo, "clean", "-qfd", "notes")
    return data


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


class NaivePoller:
    """The obvious alternative: look at the folder every second."""

    def __init__(self, store: object, repo: Path, folder: Path) -> None:
        self.store, self.repo, self.folder = store, repo, folder
        self.stop = threading.Event()
        self.recorded: dict[str, float] = {}
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        from errauto_daemon import intake

        while not self.stop.is_set():
            for path in sorted(self.folder.glob("*.patch")):
                data = path.read_bytes()
                intake.submit(self.store, self.repo, data, source="inbox", name=path.name)  # type: ignore[arg-type]
                self.recorded[path.name] = time.time()
                path.rename(self.folder / "done" / path.name)
            self.stop.wait(1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drops", type=int, default=500)
    parser.add_argument("--throughput", type=int, default=40)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="errauto-bench-daemon-"))
    os.environ["ERRAUTO_HOME"] = str(base / "state")
    from errauto_daemon.store import DECIDED, Store

    fast = make_repo(base / "fast", '["test", "!", "-e", "FAILED"]')
    slow = make_repo(base / "slow", '["sh", "-c", "sleep 0.2; test ! -e FAILED"]')
    naive_repo = make_repo(base / "naive", '["test", "!", "-e", "FAILED"]')
    store = Store()
    for repo in (fast, slow):
        store.add_repo(str(repo))
    from errauto_daemon.inbox import ensure_inbox

    for repo in (fast, slow):
        ensure_inbox(str(repo))
    daemon = subprocess.Popen([sys.executable, "-m", "errauto_daemon", "daemon", "run", "--workers", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from tests.helpers.daemon import wait_until

        wait_until(lambda: (store.daemon_row() or {}).get("pid") == daemon.pid, what="daemon start")
        time.sleep(1.0)

        # -- latency ------------------------------------------------------------
        staging = base / "staging"
        staging.mkdir()
        datas = [patch(fast, i, fail=True) for i in range(args.drops)]
        inbox = fast / "patches"
        dropped: dict[str, float] = {}
        for i, data in enumerate(datas):
            name = f"d{i:05d}.patch"
            (staging / name).write_bytes(data)
            dropped[name] = time.time()
            os.rename(staging / name, inbox / name)
            time.sleep(0.02)
        subs = wait_until(lambda: (s := store.submissions(limit=100_000)) and len(s) >= args.drops and s,
                          timeout=600, poll=0.2, what="all drops recorded")
        latency = [(s.created_at - dropped[s.source_detail]) * 1000 for s in subs
                   if s.source_detail in dropped]

        naive_inbox = base / "naive-inbox"
        (naive_inbox / "done").mkdir(parents=True)
        poller = NaivePoller(store, naive_repo, naive_inbox)
        poller.thread.start()
        naive_dropped: dict[str, float] = {}
        sample = min(args.drops, 100)
        for i in range(sample):
            name = f"n{i:05d}.patch"
            (staging / name).write_bytes(patch(naive_repo, 100_000 + i, fail=True))
            naive_dropped[name] = time.time()
            os.rename(staging / name, naive_inbox / name)
            time.sleep(0.02)
        wait_until(lambda: len(poller.recorded) >= sample, timeout=120, what="naive intake")
        poller.stop.set()
        poller.thread.join()
        naive = [(poller.recorded[n] - t) * 1000 for n, t in naive_dropped.items()]
        wait_until(lambda: store.count(("queued", "validating")) == 0, timeout=600, poll=0.5,
                   what="the latency drops to be decided")

        # -- throughput ------------------------------------------------------------
        n = args.throughput
        tdatas = [patch(slow, i, fail=True) for i in range(n)]
        for i, data in enumerate(tdatas):
            (staging / f"t{i:04d}.patch").write_bytes(data)
        before = {s.id for s in store.submissions(limit=100_000)}
        started = time.time()
        for i in range(n):
            os.rename(staging / f"t{i:04d}.patch", slow / "patches" / f"t{i:04d}.patch")

        def throughput_done() -> list[object] | None:
            new = [s for s in store.submissions(limit=100_000) if s.id not in before]
            return new if len(new) >= n and all(s.state in DECIDED for s in new) else None

        new = wait_until(throughput_done, timeout=600, poll=0.1, what="throughput batch")
        took = max(s.decided_at for s in new) - started  # type: ignore[attr-defined]
        ideal = n * 0.2 / 2

        # -- cache -------------------------------------------------------------------
        clone = base / "clone"
        git(base, "clone", "-q", str(slow), str(clone))
        held = patch(slow, 999_999, fail=True)
        fresh = subprocess.run([sys.executable, "-m", "errauto_daemon", "submit", "-", "--repo", str(slow),
                                "--wait", "--json"], input=held, capture_output=True)
        cached = subprocess.run([sys.executable, "-m", "errauto_daemon", "submit", "-", "--repo", str(clone),
                                 "--wait", "--json"], input=held, capture_output=True)
        import json

        first, second = json.loads(fresh.stdout), json.loads(cached.stdout)
        fresh_s = first["decided_at"] - first["created_at"]
        cached_s = second["decided_at"] - second["created_at"]

        # -- memory ------------------------------------------------------------------
        time.sleep(3)
        rss_kb = int(next(line.split()[1] for line in Path(f"/proc/{daemon.pid}/status").read_text().splitlines()
                          if line.startswith("VmRSS:")))

        print(f"\ndrop -> recorded, {len(latency)} drops 20 ms apart (daemon busy validating them meanwhile)")
        print(f"  errauto daemon   p50 {statistics.median(latency):6.1f} ms   p95 {percentile(latency, 0.95):6.1f} ms"
              f"   max {max(latency):6.1f} ms")
        print(f"  naive 1 s poller p50 {statistics.median(naive):6.1f} ms   p95 {percentile(naive, 0.95):6.1f} ms"
              f"   ({len(naive)} drops)")
        print(f"  ratio (p95)      {percentile(naive, 0.95) / percentile(latency, 0.95):6.1f}x")
        print(f"\nthroughput, {n} patches, 0.2 s check, 2 workers")
        print(f"  all decided in {took:.2f} s; ideal {ideal:.2f} s; efficiency {ideal / took * 100:.0f}%")
        print("\nre-submission of an identical patch on an unchanged tree (a clone)")
        print(f"  validated for real {fresh_s * 1000:7.1f} ms   from the cache {cached_s * 1000:7.1f} ms"
              f"   ({second['state']}; ratio {fresh_s / cached_s:.1f}x)")
        print(f"\ndaemon resident memory when idle: {rss_kb / 1024:.1f} MiB")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
