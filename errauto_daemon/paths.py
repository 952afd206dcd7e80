"""Where errauto keeps per-user state, caches and logs.

`ERRAUTO_HOME` overrides everything (tests and multi-tenant servers use it);
otherwise platformdirs picks the platform's conventional directories.

A state, cache or log directory that cannot be created or written
(`ERRAUTO_HOME` under a file, no permission) is a ConfigError naming it,
for every command alike; what goes wrong inside a usable one is a fault.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from errauto_daemon.errors import ConfigError

APP = "errauto"


def _home() -> Path | None:
    value = os.environ.get("ERRAUTO_HOME")
    return Path(value).expanduser().absolute() if value else None


def _ensure(path: Path, what: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot use the {what} {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot use the {what} {path}: not writable")
    return path


def state_dir() -> Path:
    home = _home()
    return _ensure(home if home else Path(platformdirs.user_state_dir(APP)), "state directory")


def cache_dir() -> Path:
    home = _home()
    return _ensure(home / "cache" if home else Path(platformdirs.user_cache_dir(APP)), "cache directory")


def log_dir() -> Path:
    home = _home()
    return _ensure(home / "log" if home else Path(platformdirs.user_log_dir(APP)), "log directory")


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
