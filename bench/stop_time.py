"""How long `errauto daemon stop` takes when a worker will not finish.

Starts the real daemon (`errauto daemon start --grace G`, one worker) on a
temporary repository and drops one patch into its inbox, twice:

  check   the project's one check is `sleep 600`: the stop must cancel it
          (its process group killed) and requeue the submission
  git     the worker hangs in `git worktree add` (a wrapper on PATH sleeps
          600 s there): nothing can interrupt it, the daemon must exit anyway

and reports the wall time of `errauto daemon stop` in each case, with the
submission's state afterwards, against the grace period.

    python bench/stop_time.py [--grace 30]

Nothing is asserted; docs/performance.md records results.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STUCK_GIT = """#!/bin/sh
if [ "$1" = worktree ] && [ "$2" = add ]; then
    echo $$ > {started}
    exec sleep 600
fi
exec {git} "$@"
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(("git", *args), cwd=cwd, check=True, capture_output=True)


def errauto(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "errauto_daemon", *args], capture_output=True, text=True,
                          env=env, check=True)


def wait_for(path: Path, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise SystemExit(f"{path} never appeared")


def scenario(base: Path, name: str, grace: float) -> tuple[float, str]:
    """One stop with a stuck worker; its wall time and the submission's state after."""
    folder = base / name
    repo, started = folder / "repo", folder / "started.pid"
    repo.mkdir(parents=True)
    env = {**os.environ, "ERRAUTO_HOME": str(folder / "state"), "XDG_CACHE_HOME": str(folder / "cache")}
    check = f'["sh", "-c", "echo $$ > {started}; exec sleep 600"]' if name == "check" else '["true"]'
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("bench\n")
    (repo / ".errauto.toml").write_text(f'target = "main"\n[checks.tests]\ncommand = {check}\n')
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-q", "-m", "init")
    if name == "git":
        bin_dir = folder / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "git"
        wrapper.write_text(STUCK_GIT.format(started=started, git=shutil.which("git")))
        wrapper.chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    errauto("watch", "add", str(repo), env=env)
    errauto("daemon", "start", "--workers", "1", "--grace", str(grace), env=env)
    (repo / "README").write_text("bench, patched\n")
    diff = subprocess.run(("git", "diff"), cwd=repo, check=True, capture_output=True).stdout
    git(repo, "checkout", "-q", "README")
    (folder / "fix.patch").write_bytes(diff)
    os.rename(folder / "fix.patch", repo / "patches" / "fix.patch")
    stuck = wait_for(started)
    began = time.monotonic()
    errauto("daemon", "stop", env=env)
    took = time.monotonic() - began
    try:
        os.kill(stuck, signal.SIGKILL)  # the stuck git of the second case outlives the daemon
    except ProcessLookupError:
        pass
    state = errauto("queue", "list", "--json", env=env).stdout
    import json

    return took, json.loads(state)[0]["state"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grace", type=float, default=30.0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="errauto-bench-stop-"))
    try:
        for name, what in (("check", "a check that sleeps 600 s"), ("git", "a worker stuck in git")):
            took, state = scenario(base, name, args.grace)
            print(f"{what:28} grace {args.grace:g} s: daemon stop took {took:.2f} s; submission {state}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
