"""Where the state database is: a SQLite file (the default) or a PostgreSQL server.

The user's own configuration file (`config.toml` in errauto's configuration
directory, or in `ERRAUTO_HOME`; never a repository's) may name a server:

    [database]
    url = "postgresql://errauto@db.internal/errauto"

and `ERRAUTO_DATABASE_URL` overrides it. `sqlite` (or no setting) is the
SQLite file in errauto's state directory. A URL may name a unix socket
(`postgresql:///errauto?host=/run/postgresql`). The password comes from
where libpq looks for it (`PGPASSWORD`, `~/.pgpass`): errauto never writes
a URL into a file, and shows one without its password (`shown`).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

from errauto_daemon import paths
from errauto_daemon.errors import ConfigError

Where = Path | str  # a SQLite file, or a postgresql:// URL

SCHEMES = ("postgresql", "postgres")


def configured() -> Where:
    """The state database this process uses: `ERRAUTO_DATABASE_URL`, else the user's configuration,
    else the SQLite file. Inside a `paths.home()` block (the demo), always that home's own file."""
    if paths.database_home():
        return paths.db_path()
    value = os.environ.get(paths.DATABASE_URL_ENV) or _from_config_file()
    if not value or value == "sqlite":
        return paths.db_path()
    if not is_postgres(value):
        raise ConfigError(f"the state database must be \"sqlite\" or a postgresql:// URL, not {shown(value)!r} "
                          f"(from {paths.DATABASE_URL_ENV} or {paths.config_file()})")
    return value


def _from_config_file() -> str | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    path = paths.config_file()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (FileNotFoundError, NotADirectoryError):  # none; an unusable home is said by what uses it
        return None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    database = data.get("database", {})
    url = database.get("url") if isinstance(database, dict) else None
    if url is not None and not isinstance(url, str):
        raise ConfigError(f"{path}: [database] url must be a string")
    return url


def is_postgres(where: Where) -> bool:
    return isinstance(where, str) and urlsplit(where).scheme in SCHEMES


def shown(where: Where) -> str:
    """`where` as errauto prints it: a URL without its password."""
    if isinstance(where, Path):
        return str(where)
    parts = urlsplit(where)
    if parts.password is None:
        return where
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


# Where libpq looks for a server's socket when a URL names no host (Debian's default, and the
# compiled-in one elsewhere).
DEFAULT_SOCKET_DIRS = (Path("/run/postgresql"), Path("/var/run/postgresql"), Path("/tmp"))


def socket_dirs(where: Where) -> tuple[Path, ...]:
    """The unix-socket folders through which `where` is reached (nothing for SQLite or TCP): a check
    must not see them, or patched code could talk to errauto's database as the user."""
    if not is_postgres(where):
        return ()
    parts = urlsplit(str(where))
    hosts = [h for value in parse_qs(parts.query).get("host", []) for h in value.split(",")]
    if not hosts and not parts.hostname:
        hosts = [os.environ.get("PGHOST", "")] if os.environ.get("PGHOST") else []
        if not hosts:
            return DEFAULT_SOCKET_DIRS
    return tuple(Path(h) for h in hosts if h.startswith("/"))
