"""The one file lock: exclusive across threads and processes, dies with its holder, follows a deleted file."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from errauto_daemon.locks import FileLock, reentrant

HOLD = """
import sys
from pathlib import Path
from errauto_daemon.locks import FileLock
lock = FileLock(Path(sys.argv[1]))
print(lock.acquire(), flush=True)
sys.stdin.read()
"""


def waiters_on(path: Path) -> int:
    """How many flock waiters the kernel lists for the file at `path` (Linux's /proc/locks)."""
    inode = f":{path.stat().st_ino} "
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if " -> FLOCK " in line and inode in line + " ")


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.01)


needs_proc_locks = pytest.mark.skipif(not Path("/proc/locks").exists(), reason="Linux's /proc/locks")


def holder(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen((sys.executable, "-c", HOLD, str(path)), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def answer(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def test_a_second_lock_is_refused_without_waiting_and_taken_after_release(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    first, second = FileLock(path), FileLock(path)
    assert first.acquire() and first.held
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert first.acquire()  # already ours
    assert not second.acquire() and not second.held
    with pytest.raises(RuntimeError):
        _ = second.fd  # not held: no file to write to
    first.release()
    first.release()  # idempotent
    assert second.acquire()
    second.release()


def test_the_context_manager_waits_and_releases_on_error(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with pytest.raises(ValueError):
        with FileLock(path) as lock:
            assert lock.held
            raise ValueError
    assert not lock.held
    assert FileLock(path).acquire()


def test_threads_take_turns(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    inside: list[int] = []
    overlaps: list[int] = []

    def work() -> None:
        for _ in range(50):
            with FileLock(path):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert overlaps == []


@needs_proc_locks
def test_a_waiting_thread_gets_the_lock_only_when_it_is_released(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    held = FileLock(path)
    assert held.acquire()
    waiting = FileLock(path)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(waiting.acquire(blocking=True)))
    waiter.start()
    until(lambda: waiters_on(path) == 1, "the thread to wait for the lock")
    assert got == [] and not waiting.held
    held.release()
    waiter.join(30)
    assert got == [True] and waiting.held
    waiting.release()


def test_another_process_is_refused_while_we_hold_it(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with FileLock(path):
        proc = holder(path)
        try:
            assert answer(proc) == "False"
        finally:
            proc.communicate("")
    proc = holder(path)
    try:
        assert answer(proc) == "True"
    finally:
        proc.communicate("")


def test_a_lock_dies_with_the_process_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    proc = holder(path)
    try:
        assert answer(proc) == "True"
        lock = FileLock(path)
        assert not lock.acquire()
    finally:
        proc.kill()
        proc.communicate()
    assert lock.acquire(blocking=True)
    lock.release()


@needs_proc_locks
def test_a_lock_file_deleted_under_a_waiter_is_taken_again_on_the_new_file(tmp_path: Path) -> None:
    # Pool.prune and Store.hold delete a lock file while holding it: whoever
    # waited on that file must lock the one now at the path, or two would
    # believe they hold the same lock.
    path = tmp_path / "x.lock"
    pruner = FileLock(path)
    assert pruner.acquire()
    waiting = FileLock(path)
    waiter = threading.Thread(target=lambda: waiting.acquire(blocking=True))
    waiter.start()
    until(lambda: waiters_on(path) == 1, "the thread to wait on the old file")
    path.unlink()
    pruner.release()
    waiter.join(30)
    assert waiting.held
    assert os.fstat(waiting.fd).st_ino == path.stat().st_ino
    assert not FileLock(path).acquire()
    waiting.release()


def test_reentrant_within_a_thread_exclusive_across_threads(tmp_path: Path) -> None:
    path = tmp_path / "merge.lock"
    seen: list[bool] = []

    def other_thread_can_take() -> bool:
        result: list[bool] = []
        t = threading.Thread(target=lambda: result.append(FileLock(path).acquire()))
        t.start()
        t.join(30)
        return result == [True]

    with reentrant(path) as outer:
        seen.append(outer)
        with reentrant(path) as inner:
            seen.append(inner)
        assert not other_thread_can_take()  # the inner exit let nothing go
    assert seen == [True, False]
    taken = FileLock(path)
    assert taken.acquire()  # the outer exit did
    taken.release()
    with reentrant(path) as again:
        assert again
