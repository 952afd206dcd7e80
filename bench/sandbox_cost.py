"""What running a check in its sandbox costs, against the same check unsandboxed.

In one run, in a real pooled worktree (its `View`: the worktree, the objects,
the hidden state, cache and git dir, as a validation mounts them), each
check is run alternately sandboxed and unsandboxed through
`checks.run_check`, and the median wall time of each is reported:

  true        the program does nothing: the sandbox's start and end
  python      `python -c pass`: an interpreter's start (its prefix and
              virtualenv bound read-only)
  suite       a unittest suite of about two seconds of CPU work: the cost
              while a check runs (errauto reads /proc each 0.1 s for the
              limits)

    python bench/sandbox_cost.py [--runs 15]

Timings vary with the machine; the difference, measured in one run, is the
number to compare. Nothing here is asserted; docs/performance.md records results.
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

SUITE = '''\
import unittest


def work(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


class Suite(unittest.TestCase):
'''


def git(cwd: Path, *args: str) -> None:
    subprocess.run(("git", *args), cwd=cwd, check=True, capture_output=True)


def suite_size(target: float) -> int:
    """Loop iterations per test so that ten tests take about `target` seconds here."""
    n = 200_000
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i % 7
    per = (time.perf_counter() - start) / n
    return max(1000, int(target / 10 / per))


def build(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    n = suite_size(2.0)
    tests = SUITE + "".join(f"    def test_{i}(self):\n        self.assertGreater(work({n}), 0)\n\n"
                            for i in range(10))
    (path / "tests").mkdir()
    (path / "tests" / "__init__.py").write_text("")
    (path / "tests" / "test_work.py").write_text(tests)
    git(path, "add", "-A")
    git(path, "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "init")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="errauto-sandbox-bench-") as tmp:
        os.environ["ERRAUTO_HOME"] = str(Path(tmp) / "state")
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        import pygit2

        from errauto_daemon import checks
        from errauto_daemon.config import CheckConfig, Config
        from errauto_daemon.sandbox import for_check
        from errauto_daemon.workspace import Pool

        repo = pygit2.Repository(str(build(Path(tmp) / "repo")))
        tip = repo.head.peel(pygit2.Commit)
        true = shutil.which("true") or "/bin/true"
        cases = {
            "true": ((true,), args.runs * 2),
            "python": ((sys.executable, "-c", "pass"), args.runs * 2),
            "suite": ((sys.executable, "-m", "unittest", "-q"), max(3, args.runs // 3)),
        }
        config = Config(target="main")
        env = checks.check_env(config.secrets())
        print(f"{'check':8} {'runs':>5} {'unsandboxed':>12} {'sandboxed':>12} {'added':>10} {'ratio':>7}")
        with Pool(repo).acquire(tip) as slot:
            view = slot.view()
            for name, (command, runs) in cases.items():
                check = CheckConfig(name=name, command=command, weight=1.0)
                sandbox = for_check(config, check, view)
                times: dict[bool, list[float]] = {False: [], True: []}
                for _ in range(runs):
                    for confined in (False, True):
                        start = time.perf_counter()
                        result = checks.run_check(check, slot.path, Path(tmp) / "check.log", env, None,
                                                  sandbox if confined else None)
                        times[confined].append(time.perf_counter() - start)
                        if result.status != "passed":
                            print(f"{name} failed {'sandboxed' if confined else 'unsandboxed'}: {result.detail}")
                            print((Path(tmp) / "check.log").read_text())
                            return 1
                bare, boxed = statistics.median(times[False]), statistics.median(times[True])
                print(f"{name:8} {runs:>5} {bare * 1000:>10.1f}ms {boxed * 1000:>10.1f}ms "
                      f"{(boxed - bare) * 1000:>8.1f}ms {boxed / bare:>7.3f}")
            slot.clean()
    return 0


if __name__ == "__main__":
    sys.exit(main())
