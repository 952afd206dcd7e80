"""Create, use, remove and recreate worktree slots from several threads at once.

Run in-process by tests/test_workspace.py and, as `python -m
tests.helpers.slotstress REPO ROUNDS THREADS`, in separate processes beside
it: every process and thread shares one pool, as the daemon's workers and `errauto apply` do. Each use
checks that its slot holds exactly the base; every few uses a slot is
removed (as `Pool.prune` does) so the next use has to create it again, which
is where `git worktree add` and `git worktree prune` meet.
"""
from __future__ import annotations

import sys
import threading
import traceback

import pygit2

from errauto_daemon.workspace import Pool

POOL_SIZE = 4


def stress(repo_path: str, rounds: int, threads: int) -> list[str]:
    """Run the loop in `threads` threads; return what went wrong (empty: nothing)."""
    failures: list[str] = []

    def loop(seed: int) -> None:
        repo = pygit2.Repository(repo_path)
        base = repo.references["refs/heads/main"].peel(pygit2.Commit)
        expected = {str(e.name): repo[e.id].read_raw() for e in base.tree if e.type_str == "blob"}
        pool = Pool(repo, size=POOL_SIZE)
        for n in range(rounds):
            try:
                with pool.acquire(base) as slot:
                    for name, data in expected.items():
                        if (slot.path / name).read_bytes() != data:
                            failures.append(f"slot {slot.number}: {name} differs from the base")
                    (slot.path / f"scratch-{seed}-{n}").write_text("left by a check\n")
                    if (n + seed) % 4 != 0:
                        slot.remove()
                    else:
                        slot.clean()
            except Exception:
                failures.append(traceback.format_exc())

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return failures


if __name__ == "__main__":
    found = stress(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    for failure in found:
        print(failure, file=sys.stderr)
    sys.exit(1 if found else 0)
