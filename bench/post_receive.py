"""What errauto's post-receive hook adds to a push.

Two bare repositories cloned from the same project: one with errauto's
post-receive hook installed, one with a no-op hook (it only drains stdin).
The same sequence of pushes to `refs/for/main` goes to both, interleaved,
and the script reports the median push time of each and their difference.

    python bench/post_receive.py [--pushes 50]

Run with an installed errauto (its modules byte-compiled, as pip leaves
them); nothing is asserted; docs/performance.md records results.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(("git", *args), cwd=cwd, check=True, capture_output=True, text=True).stdout


def timed_push(dev: Path, remote: str, n: int) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(("git", "push", "-f", remote, "HEAD:refs/for/main"), cwd=dev,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return elapsed, proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=50)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="errauto-bench-hook-"))
    os.environ["ERRAUTO_HOME"] = str(base / "state")
    os.environ.update(GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
                      GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
    try:
        seed = base / "seed"
        seed.mkdir()
        git(seed, "init", "-q", "-b", "main")
        for i in range(200):
            (seed / f"mod{i:03d}.py").write_text(f"VALUE = {i}\n")
        (seed / ".errauto.toml").write_text('target = "main"\n[checks.tests]\ncommand = ["true"]\n')
        git(seed, "add", "-A")
        git(seed, "commit", "-q", "-m", "init")
        with_hook, no_op = base / "errauto.git", base / "noop.git"
        for bare in (with_hook, no_op):
            git(base, "clone", "-q", "--bare", str(seed), str(bare))
        subprocess.run([sys.executable, "-m", "errauto_daemon", "hooks", "install", "--repo", str(with_hook)],
                       check=True, capture_output=True)
        hook = no_op / "hooks" / "post-receive"
        hook.write_text("#!/bin/sh\ncat >/dev/null\n")
        hook.chmod(0o755)
        dev = base / "dev"
        git(base, "clone", "-q", str(seed), str(dev))
        git(dev, "remote", "add", "errauto", str(with_hook))
        git(dev, "remote", "add", "noop", str(no_op))
        errauto_times, noop_times = [], []
        last = ""
        for n in range(args.pushes):
            (dev / f"mod{n % 200:03d}.py").write_text(f"VALUE = {n} + 1000\n")
            git(dev, "commit", "-q", "-am", f"change {n}")
            t, last = timed_push(dev, "errauto", n)
            errauto_times.append(t)
            t, _ = timed_push(dev, "noop", n)
            noop_times.append(t)
        with_med, noop_med = statistics.median(errauto_times), statistics.median(noop_times)
        print(f"\n{args.pushes} pushes to refs/for/main, each a new commit")
        print(f"  with errauto's post-receive  median {with_med * 1000:6.1f} ms")
        print(f"  with a no-op post-receive    median {noop_med * 1000:6.1f} ms")
        print(f"  errauto adds                 median {(with_med - noop_med) * 1000:6.1f} ms per push")
        print(f"  last push said: {[l for l in last.splitlines() if 'errauto' in l]}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
