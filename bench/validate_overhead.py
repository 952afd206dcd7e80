"""errauto's overhead per patch against a naive worktree-per-patch baseline.

For a 5,000- and a 30,000-file repository, runs a series of small patches
with one trivial check (`true`) and reports, per patch:

  errauto   decision time (submit -> decided, merge included) minus the time
            spent inside the check command
  naive     `git worktree add` + `git apply` + the same check + `git worktree
            remove`, minus the check, in the same process
  ratio     naive / errauto

plus the per-phase breakdown errauto records, and the time to reject a patch
that does not apply (no checkout happens for it).

    python bench/validate_overhead.py [--files 5000 30000] [--patches 20]

Timings vary with the machine; the ratio, measured in one run, is the number
to compare. Nothing here is asserted; docs/performance.md records results.
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


def git(cwd: Path, *args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(("git", *args), cwd=cwd, input=input, check=True, capture_output=True).stdout


def build_repo(path: Path, files: int, *, bare_copy: bool) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    per_dir = 100
    for d in range(files // per_dir):
        directory = path / f"pkg{d:04d}"
        directory.mkdir()
        for f in range(per_dir):
            (directory / f"mod{f:03d}.py").write_text(
                "".join(f"value_{i} = {d * per_dir + f + i}\n" for i in range(8)))
    true = shutil.which("true") or "/bin/true"
    (path / ".errauto.toml").write_text(
        f'target = "main"\nauto_merge_threshold = 0.95\n[checks.tests]\ncommand = ["{true}"]\n')
    git(path, "add", "-A")
    git(path, "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "init")
    if not bare_copy:
        return path
    bare = path.with_name(path.name + ".git")
    git(path.parent, "clone", "-q", "--bare", str(path), str(bare))
    return bare


def make_patches(work: Path, count: int, files: int) -> list[bytes]:
    patches = []
    for i in range(count):
        d, f = (i * 37) % (files // 100), (i * 11) % 100
        name = f"pkg{d:04d}/mod{f:03d}.py"
        target = work / name
        original = target.read_text()
        target.write_text(original.replace("value_3 = ", f"value_3 = {i} + ", 1))
        patches.append(git(work, "diff"))
        target.write_text(original)
    return patches


class Errauto:
    """errauto in this process, as the daemon's worker runs it."""

    def __init__(self, repo: Path) -> None:
        from errauto_daemon.store import Store
        from errauto_daemon.validate import Validator

        self.repo = repo
        self.store = Store()
        self.validator = Validator(self.store)

    def decide(self, data: bytes, name: str) -> tuple[float, float, dict[str, float]]:
        """Overhead until decided, overhead until the worker is free, phases."""
        from errauto_daemon import intake

        wall = time.time()
        started = time.perf_counter()
        sub = intake.submit(self.store, self.repo, data, source="cli", name=name).submission
        sub = self.validator.process(sub.id)
        elapsed = time.perf_counter() - started
        assert sub.state == "merged", (sub.state, sub.reason)
        assert sub.decided_at is not None
        inside = sum(c.duration for c in self.store.checks(sub.id))
        return (sub.decided_at - wall - inside, elapsed - inside,
                dict((sub.explanation or {}).get("timings", {})))


def bench_not_applying(repo: Path, work: Path) -> tuple[float, bool]:
    from errauto_daemon import intake, paths
    from errauto_daemon.store import Store
    from errauto_daemon.validate import Validator

    stale = (b"diff --git a/pkg0000/mod000.py b/pkg0000/mod000.py\n--- a/pkg0000/mod000.py\n"
             b"+++ b/pkg0000/mod000.py\n@@ -1,3 +1,3 @@\n value_0 = 0\n-value_1 = 999\n+value_1 = 1\n"
             b" value_2 = 2\n")
    store = Store()
    worktrees = paths.worktrees_dir()
    before = sorted(str(p) for p in worktrees.rglob("state.json"))
    stamps = [os.stat(p).st_mtime_ns for p in before]
    times = []
    for i in range(10):
        started = time.perf_counter()
        sub = intake.submit(store, repo, stale + f"#{i}\n".encode(), source="cli", name=f"stale{i}.patch")
        result = Validator(store).process(sub.submission.id)
        times.append(time.perf_counter() - started)
        assert result.state == "rejected", result.reason
    after = [os.stat(p).st_mtime_ns for p in before]
    return statistics.median(times), before == sorted(str(p) for p in worktrees.rglob("state.json")) and stamps == after


def naive(repo: Path, data: bytes, scratch: Path) -> float:
    """`git worktree add` + `git apply` + the check + `git worktree remove`, minus the check."""
    true = shutil.which("true") or "/bin/true"
    wt = scratch / "wt"
    started = time.perf_counter()
    git(repo, "worktree", "add", "-q", "--detach", str(wt), "main")
    git(wt, "apply", "-", input=data)
    check_start = time.perf_counter()
    subprocess.run([true], cwd=wt, check=True)
    inside = time.perf_counter() - check_start
    git(repo, "worktree", "remove", "--force", str(wt))
    return time.perf_counter() - started - inside


def run(files: int, count: int, bare: bool, profile: bool = False) -> dict[str, float]:
    base = Path(tempfile.mkdtemp(prefix=f"errauto-bench-{files}-"))
    os.environ["ERRAUTO_HOME"] = str(base / "state")
    try:
        work = base / "work"
        repo = build_repo(work, files, bare_copy=bare)
        patches = make_patches(work, count + 1, files)
        errauto = Errauto(repo)
        started = time.perf_counter()
        errauto.decide(patches[0], "warmup.patch")  # creates the pooled worktree, once
        first = time.perf_counter() - started
        scratch = Path(tempfile.mkdtemp(prefix="naive-", dir=base))
        overheads, full, phases, naive_times = [], [], [], []
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
        # Interleaved, so both see the same machine: page cache, writeback, load.
        for i, data in enumerate(patches[1:], 1):
            if not profile:
                naive_times.append(naive(repo, data, scratch))
            else:
                profiler.enable()
            decided, cycle, timings = errauto.decide(data, f"p{i}.patch")
            if profile:
                profiler.disable()
            overheads.append(decided)
            full.append(cycle)
            phases.append(timings)
        if profile:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
            naive_times = [float("nan")]
        reject, untouched = bench_not_applying(repo, work)
        med = statistics.median(overheads)
        p95 = sorted(overheads)[int(0.95 * (len(overheads) - 1))]
        naive_med = statistics.median(naive_times)
        phase_names = sorted({k for p in phases for k in p})
        breakdown = {k: statistics.median([p.get(k, 0.0) for p in phases]) for k in phase_names}
        kind = "bare" if bare else "checked out"
        print(f"\n{files:,} files ({kind}), {len(overheads)} patches, check = `true`")
        print(f"  errauto overhead per patch   median {med * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"
              "   (until decided)")
        print(f"  errauto full cycle per patch median {statistics.median(full) * 1000:7.1f} ms"
              "              (decided, then its worktree cleaned)")
        print(f"  naive worktree per patch     median {naive_med * 1000:7.1f} ms")
        print(f"  ratio naive / errauto        {naive_med / med:7.1f}x  "
              f"(full cycle: {naive_med / statistics.median(full):.1f}x)")
        print(f"  first patch (creates the pooled worktree)  {first * 1000:7.1f} ms")
        print("  errauto phases (median ms): " + ", ".join(f"{k} {v * 1000:.1f}" for k, v in breakdown.items()))
        print(f"  patch that does not apply: rejected in {reject * 1000:.1f} ms (median of 10), "
              f"worktree untouched: {untouched}")
        return {"files": files, "errauto_ms": med * 1000, "full_ms": statistics.median(full) * 1000,
                "naive_ms": naive_med * 1000,
                "ratio": naive_med / med, "reject_ms": reject * 1000}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, nargs="+", default=[5000, 30000])
    parser.add_argument("--patches", type=int, default=20)
    parser.add_argument("--profile", action="store_true",
                        help="print where errauto's time goes (cProfile, top functions)")
    parser.add_argument("--checked-out", action="store_true",
                        help="merge into a non-bare repo whose checkout follows (default: a bare repo)")
    args = parser.parse_args()
    for files in args.files:
        run(files, args.patches, bare=not args.checked_out, profile=args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
