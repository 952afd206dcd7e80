"""The thread-leak check of conftest.sealed_env fires, daemon threads included.

Each case runs pytest in a subprocess, with this suite's conftest as a plugin,
on a small test file of its own."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.gitrepo import ROOT

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

LEAKS = '''
import threading
import time


def test_leaves_a_thread_running() -> None:
    # Past the check's grace, and then over, so that the process can end.
    threading.Thread(target=time.sleep, args=(5,), name="left-behind", daemon={daemon}).start()
'''

STOPS = '''
import threading


def test_a_thread_told_to_stop_is_not_a_leak() -> None:
    stop = threading.Event()
    threading.Thread(target=stop.wait, name="stopping", daemon=True).start()
    stop.set()  # the thread is on its way out, perhaps not yet ended
'''


def pytest_on(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "test_case.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "ERRAUTO_TEST_BACKENDS": "sqlite"}  # each case once: it is about the thread check, not the database
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                           "--rootdir", str(folder), "-c", os.devnull, str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_a_daemon_thread_left_running_fails_the_test(tmp_path: Path) -> None:
    proc = pytest_on(tmp_path, LEAKS.format(daemon=True))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "threads leaked: [<Thread(left-behind" in proc.stdout
    assert "1 passed, 1 error" in proc.stdout


@pytest.mark.slow
def test_a_thread_left_running_fails_the_test(tmp_path: Path) -> None:
    proc = pytest_on(tmp_path, LEAKS.format(daemon=False))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "threads leaked: [<Thread(left-behind" in proc.stdout


def test_a_thread_told_to_stop_passes(tmp_path: Path) -> None:
    proc = pytest_on(tmp_path, STOPS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
