"""Where errauto keeps its state, and choosing another home without touching the environment."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from errauto_daemon import paths

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend


def test_a_home_block_moves_every_directory_and_leaves_the_environment_alone(tmp_path: Path) -> None:
    before = dict(os.environ)
    other = tmp_path / "other"
    assert paths.state_dir() == tmp_path / "state"
    with paths.home(other) as home:
        assert home == other
        assert paths.state_dir() == other
        assert paths.db_path() == other / "errauto.db"
        assert paths.cache_dir() == other / "cache"
        assert paths.log_dir() == other / "log"
        assert paths.daemon_lock() == other / "daemon.lock"
        assert dict(os.environ) == before
    assert paths.state_dir() == tmp_path / "state"
    assert dict(os.environ) == before


def test_a_subprocess_is_handed_the_home_of_the_block(tmp_path: Path) -> None:
    assert paths.child_env() == dict(os.environ)
    with paths.home(tmp_path / "other"):
        env = paths.child_env()
        assert env["ERRAUTO_HOME"] == str(tmp_path / "other")
        assert paths.child_env({"PATH": "/bin"}) == {"PATH": "/bin", "ERRAUTO_HOME": str(tmp_path / "other")}
    assert paths.child_env({"PATH": "/bin"}) == {"PATH": "/bin"}


def test_blocks_nest_and_unwind(tmp_path: Path) -> None:
    with paths.home(tmp_path / "a"):
        with paths.home(tmp_path / "b"):
            assert paths.state_dir() == tmp_path / "b"
        assert paths.state_dir() == tmp_path / "a"
    assert paths.state_dir() == tmp_path / "state"

