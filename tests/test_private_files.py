"""What errauto writes is readable by the user alone, whatever the umask.

The modes are those `stat` shows: the state and cache directories and the
folders in them 0700, the database (and its -wal and -shm files), stored
patches and crash logs 0600.
"""
from __future__ import annotations

import logging
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from errauto_daemon import paths
from errauto_daemon.store import Store
from tests.helpers.gitrepo import CALC, PYTHON, GitRepo


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The common default, under which files are made world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def errauto(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "errauto_daemon", *args], capture_output=True, text=True,
                          env=env if env is not None else os.environ.copy())


def test_apply_leaves_only_private_files(project: GitRepo, tmp_path: Path, state_dir: Path) -> None:
    patch = tmp_path / "fix.patch"
    patch.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))

    proc = errauto("apply", str(patch), "--repo", str(project.path))

    assert proc.returncode == 0, proc.stderr
    assert mode(state_dir) == 0o700
    assert mode(state_dir / "cache") == 0o700
    if not os.environ.get("ERRAUTO_DATABASE_URL"):  # a server's database is no file of the user's
        assert mode(state_dir / "errauto.db") == 0o600
    for folder in ("patches", "checks", "locks", "cache/worktrees"):
        assert mode(state_dir / folder) == 0o700, folder
    stored = list((state_dir / "patches").iterdir())
    assert stored and all(mode(p) == 0o600 for p in stored)
    # The check logs are out of everyone else's reach: their folder is the owner's alone.
    logs = list((state_dir / "checks").rglob("*.log"))
    assert logs and all(mode(log) == 0o600 and mode(log.parent) == 0o700 for log in logs)


@pytest.mark.sqlite_only("SQLite's write-ahead files")
def test_the_databases_write_ahead_files_are_private(state_dir: Path) -> None:
    store = Store()
    try:
        wal = state_dir / "errauto.db-wal"
        shm = state_dir / "errauto.db-shm"
        assert wal.exists() and shm.exists()  # a connection is open in WAL mode
        assert (mode(state_dir / "errauto.db"), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
    finally:
        store.close()


@pytest.mark.sqlite_only("the database file's mode")
def test_files_an_earlier_version_left_readable_are_made_private(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o755)
    db = state_dir / "errauto.db"
    db.touch(mode=0o644)
    (state_dir / "patches").mkdir(mode=0o755)
    os.chmod(state_dir, 0o755)

    Store().close()

    assert mode(state_dir) == 0o700 and mode(db) == 0o600
    assert mode(paths.patches_dir()) == 0o700


def test_a_crash_log_is_private(project: GitRepo, tmp_path: Path, state_dir: Path) -> None:
    patch = tmp_path / "fix.patch"
    patch.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))
    broken = tmp_path / "broken.gitconfig"
    broken.write_text("[core\n")  # every git command fails: an internal error

    proc = errauto("apply", str(patch), "--repo", str(project.path),
                   env={**os.environ, "GIT_CONFIG_GLOBAL": str(broken)})

    assert proc.returncode == 3, proc.stderr
    logs = list((state_dir / "log").glob("crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in proc.stderr
    assert mode(logs[0]) == 0o600 and mode(state_dir / "log") == 0o700


def test_the_daemon_log_is_private_and_stays_so_when_rotated(state_dir: Path) -> None:
    from errauto_daemon.daemon.logs import DaemonLogFile

    handler = DaemonLogFile()
    try:
        log = Path(handler.baseFilename)
        assert mode(log) == 0o600
        handler.emit(logging.LogRecord("errauto", logging.INFO, __file__, 1, "before rollover", None, None))
        handler.doRollover()
        assert mode(log) == 0o600 and mode(log.with_name(log.name + ".1")) == 0o600
    finally:
        handler.close()
