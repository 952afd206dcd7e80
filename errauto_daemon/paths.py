"""Where errauto keeps per-user state, caches and logs.

`ERRAUTO_HOME` overrides everything (tests and multi-tenant servers use it);
otherwise platformdirs picks the platform's conventional directories.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "errauto"


def _home() -> Path | None:
    value = os.environ.get("ERRAUTO_HOME")
    return Path(value).expanduser().absolute() if value else None


def state_dir() -> Path:
    home = _home()
    path = home if home else Path(platformdirs.user_state_dir(APP))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    home = _home()
    path = home / "cache" if home else Path(platformdirs.user_cache_dir(APP))
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir() -> Path:
    home = _home()
    path = home / "log" if home else Path(platformdirs.user_log_dir(APP))
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_path() -> Path:
    return state_dir() / "errauto.db"


def patches_dir() -> Path:
    path = state_dir() / "patches"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_logs_dir() -> Path:
    path = state_dir() / "checks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def locks_dir() -> Path:
    path = state_dir() / "locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def worktrees_dir() -> Path:
    path = cache_dir() / "worktrees"
    path.mkdir(parents=True, exist_ok=True)
    return path


def daemon_lock() -> Path:
    return state_dir() / "daemon.lock"


def wake_fifo() -> Path:
    return state_dir() / "wake.fifo"
