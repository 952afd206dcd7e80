"""What a PostgreSQL state database costs against the SQLite file, for one patch, end to end.

A small project (one module, a unittest suite, a lint script: the tests'
own `python_project`), and a series of patches that each add a function, so
every one is validated and merged. Each patch is decided by `errauto apply`
as a user runs it (a new process: the CLI's start, opening the database,
validation, the merge), alternately on the SQLite file and on a PostgreSQL
server on this machine (a unix socket; started from the machine's initdb,
tests/helpers/postgres.py), in the same run:

  sqlite      median seconds per patch, the SQLite file in ERRAUTO_HOME
  postgresql  the same with ERRAUTO_DATABASE_URL naming the server
  ratio       postgresql / sqlite

and the store's own time in one process, without git or checks: recording
a submission, claiming it, deciding it, reading it back.

    python bench/backend_cost.py [--patches 15] [--store-ops 300]

Checks run with `sandbox = "off"` here, so the comparison is of the state
database, not of bubblewrap. Nothing is asserted; docs/performance.md
records results.
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


def errauto(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "errauto_daemon", *args], env=env, capture_output=True)


def store_ops(where: object, n: int) -> float:
    """Seconds per submission for insert, claim, transition and get, in this process."""
    from errauto_daemon.domain import State
    from errauto_daemon.store import Store

    store = Store(where)  # type: ignore[arg-type]
    started = time.perf_counter()
    for i in range(n):
        sub, _ = store.insert_submission(repo="/bench", target="main", source="cli", source_detail=None,
                                         title=f"patch {i}", author=None, note=None,
                                         patch_sha256=f"{i:064x}", dedup_key=f"bench-{time.time()}-{i}")
        store.claim(sub.id)
        store.transition(sub.id, State.MERGED, route="auto_merge", confidence=1.0)
        store.get(sub.id)
    store.close()
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=15)
    parser.add_argument("--store-ops", type=int, default=300)
    args = parser.parse_args()

    from errauto_daemon.store import Store
    from tests.helpers.gitrepo import CALC, config_toml, python_project
    from tests.helpers.postgres import PostgresServer

    work = Path(tempfile.mkdtemp(prefix="errauto-bench-backend-"))
    server = PostgresServer.create()
    try:
        Store(server.url, migrate=True).close()
        base_env = {**os.environ, "HOME": str(work / "home"), "XDG_CACHE_HOME": str(work / "cache")}
        base_env.pop("ERRAUTO_DATABASE_URL", None)
        envs = {"sqlite": {**base_env, "ERRAUTO_HOME": str(work / "sqlite")},
                "postgresql": {**base_env, "ERRAUTO_HOME": str(work / "postgresql"),
                               "ERRAUTO_DATABASE_URL": server.url}}
        projects = {name: python_project(work / f"project-{name}", config=config_toml(top='sandbox = "off"'))
                    for name in envs}
        for project in projects.values():  # its tests pass, so every patch below is merged by itself
            project.commit("add adds", {"calc.py": CALC.replace("a - b", "a + b")})
        times: dict[str, list[float]] = {name: [] for name in envs}
        for i in range(args.patches):
            for name, env in envs.items():
                project = projects[name]
                patch = work / f"{name}-{i}.patch"
                patch.write_bytes(project.make_patch(
                    {"calc.py": project.read("calc.py") + f"\n\ndef extra_{i}(a):\n    return a + {i}\n"}))
                t0 = time.perf_counter()
                done = errauto(env, "apply", str(patch), "--repo", str(project.path), "--json")
                times[name].append(time.perf_counter() - t0)
                assert done.returncode == 0, (done.returncode, done.stdout.decode()[-500:], done.stderr.decode())
        sqlite, postgres = (statistics.median(times[n]) for n in ("sqlite", "postgresql"))
        print(f"errauto apply, one patch end to end ({args.patches} patches each, alternating; medians):")
        print(f"  sqlite      {sqlite * 1000:7.0f} ms")
        print(f"  postgresql  {postgres * 1000:7.0f} ms")
        print(f"  ratio       {postgres / sqlite:7.2f}")
        lite = store_ops(work / "ops.db", args.store_ops)
        pg = store_ops(server.url, args.store_ops)
        print(f"store only: insert, claim, decide, read ({args.store_ops} submissions):")
        print(f"  sqlite      {lite * 1000:7.2f} ms a submission")
        print(f"  postgresql  {pg * 1000:7.2f} ms a submission")
        print(f"  ratio       {pg / lite:7.2f}")
    finally:
        server.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
