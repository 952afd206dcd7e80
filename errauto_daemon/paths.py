"""Where errauto keeps per-user state, caches and logs.

`ERRAUTO_HOME` overrides everything (tests and multi-tenant servers use it);
otherwise platformdirs picks the platform's conventional directories. Code
that needs another home for a while (`errauto demo`) says so with `home()`,
which leaves the process environment alone; `child_env()` hands the home on
to an errauto subprocess.

A state, cache or log directory that cannot be created or written
(`ERRAUTO_HOME` under a file, no permission) is a ConfigError naming it,
for every command alike; what goes wrong inside a usable one is a fault.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import platformdirs

from errauto_daemon.errors import ConfigError

APP = "errauto"
HOME_ENV = "ERRAUTO_HOME"

# A context variable, not a module global: it holds in the context that set
# it (threads started there begin without it) and is undone on the way out.
_home_override: ContextVar[Path | None] = ContextVar("errauto_home", default=None)


@contextmanager
def home(path: Path) -> Iterator[Path]:
    """Within this block, errauto's home is `path`, as if `ERRAUTO_HOME` named it."""
    absolute = path.expanduser().absolute()
    token = _home_override.set(absolute)
    try:
        yield absolute
    finally:
        _home_override.reset(token)


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an errauto subprocess that must share this process's
    state: `base` (this process's environment by default), with `ERRAUTO_HOME`
    naming the home a `home()` block chose."""
    env = dict(os.environ if base is None else base)
    override = _home_override.get()
    if override is not None:
        env[HOME_ENV] = str(override)
        env.pop(DATABASE_URL_ENV, None)  # a home of its own keeps its own database (see database_home)
    return env


DATABASE_URL_ENV = "ERRAUTO_DATABASE_URL"


def database_home() -> bool:
    """Whether a `home()` block is in force: its state, database included, is its own (the demo's
    SQLite file), whatever server the user's configuration or environment names."""
    return _home_override.get() is not None


def _home() -> Path | None:
    override = _home_override.get()
    if override is not None:
        return override
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser().absolute() if value else None


def _ensure(path: Path, what: str) -> Path:
    try:
        private_dir(path)
    except OSError as exc:
        raise ConfigError(f"cannot use the {what} {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot use the {what} {path}: not writable")
    return path


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner can read (0700), made if missing.

    What errauto keeps (the database, patches, check and crash logs, the
    slots' worktrees) is the user's code and what their checks printed:
    nobody else on the machine should read it, whatever the umask."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.stat(path).st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except PermissionError:
            pass  # a directory someone else owns: the files in it are still private
    return path


def private_file(path: Path) -> Path:
    """`path` as a file only its owner can read and write (0600), made empty if missing.

    An existing file is never opened: closing a descriptor drops every POSIX
    lock this process holds on the file, SQLite's on its database among them."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
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


def config_file() -> Path:
    """The user's own configuration (not a repository's): `config.toml` in ERRAUTO_HOME, or in the
    platform's configuration directory. It is read, never written, by errauto."""
    home = _home()
    return (home if home else Path(platformdirs.user_config_dir(APP))) / "config.toml"


def patches_dir() -> Path:
    return private_dir(state_dir() / "patches")


def check_logs_dir() -> Path:
    return private_dir(state_dir() / "checks")


def locks_dir() -> Path:
    return private_dir(state_dir() / "locks")


def worktrees_dir() -> Path:
    return private_dir(cache_dir() / "worktrees")


def daemon_lock() -> Path:
    return state_dir() / "daemon.lock"


def wake_fifo() -> Path:
    return state_dir() / "wake.fifo"
