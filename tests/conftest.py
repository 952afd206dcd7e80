from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import ConfigLevel

from errauto_daemon.store import Store
from tests.helpers.daemon import DaemonProcess
from tests.helpers.gitrepo import GitRepo, git, python_project
from tests.helpers.postgres import PostgresServer
from tests.helpers.postgres import binaries as postgres_binaries

REAL_HOME = Path(os.path.expanduser("~")).resolve()
SECRET_VARS = ("GITHUB_TOKEN", "SLACK_WEBHOOK_URL", "ERRAUTO_HOME", "ERRAUTO_DATABASE_URL")
# Every test runs once on each state database errauto has: the SQLite file, and a real PostgreSQL
# server the session starts (tests/helpers/postgres.py; each test gets a schema of its own).
# ERRAUTO_TEST_BACKENDS=sqlite (or postgresql) runs one only.
BACKENDS = tuple(os.environ.get("ERRAUTO_TEST_BACKENDS", "sqlite,postgresql").split(","))


def _real_state_dirs() -> list[Path]:
    return [REAL_HOME / ".local" / "state" / "errauto", REAL_HOME / ".cache" / "errauto",
            REAL_HOME / ".local" / "share" / "errauto", REAL_HOME / "errauto"]


def _snapshot() -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for path in _real_state_dirs():
        out[str(path)] = path.stat().st_mtime if path.exists() else None
    return out


# A thread the test started may still be on its way out when the test returns
# (it saw its stop event and is unwinding): it gets this long to end.
THREAD_GRACE = 2.0


def _leaked_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started during the test that are still alive after a grace.

    Daemon threads count too: every thread errauto starts is one, and a daemon
    thread left running is a leak all the same (it holds files, sockets and
    locks into the next test)."""
    deadline = time.monotonic() + THREAD_GRACE
    leaked = []
    for thread in threading.enumerate():
        if thread in before or thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread)
    return leaked


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (initdb, pg_ctl, a unix socket in a temporary folder)."""
    if postgres_binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("no PostgreSQL server on this machine (initdb, pg_ctl): .ci/run installs it")
        pytest.skip("no PostgreSQL server on this machine (initdb, pg_ctl)")
    server = PostgresServer.create()
    try:
        yield server
    finally:
        server.destroy()


_schemas = iter(range(1, 1 << 30))


def fresh_database_url(server: PostgresServer) -> str:
    """A URL of the session's server whose tables land in a new, empty schema."""
    import psycopg

    name = f"t{next(_schemas)}_{os.getpid()}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    url = f"{server.url}&options=-csearch_path%3D{name}"
    Store(url, migrate=True).close()  # what `errauto db migrate` does before a first use
    return url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked `database_free` runs on the first backend only: a second run would be the same."""
    first = BACKENDS[0]
    dropped = [item for item in items if item.get_closest_marker("database_free")
               and getattr(item, "callspec", None) is not None
               and item.callspec.params.get("backend", first) != first]  # type: ignore[attr-defined]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [item for item in items if item not in gone]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which state database the test's errauto uses."""
    name: str = request.param
    return name


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    """The state database of the test's errauto, when it is not the SQLite file in ERRAUTO_HOME."""
    if backend != "postgresql":
        return None
    marker = request.node.get_closest_marker("sqlite_only")
    if marker is not None:
        pytest.skip(f"of the SQLite file itself: {marker.args[0] if marker.args else ''}")
    server: PostgresServer = request.getfixturevalue("postgres")
    return fresh_database_url(server)


@pytest.fixture(autouse=True)
def sealed_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Iterator[Path]:
    """Point HOME, XDG dirs and ERRAUTO_HOME at tmp; pin git identity and config.

    Fails the test if anything appeared in, or changed, the real user's
    errauto directories.
    """
    before = _snapshot()
    home = tmp_path / "home"
    home.mkdir()
    for key in list(os.environ):
        if key.startswith("GIT_") or key in SECRET_VARS:
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"),
                     ("XDG_DATA_HOME", ".local/share"), ("XDG_STATE_HOME", ".local/state")):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("ERRAUTO_HOME", str(tmp_path / "state"))
    if database_url is not None:
        monkeypatch.setenv("ERRAUTO_DATABASE_URL", database_url)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test Author\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
        "[protocol \"file\"]\n\tallow = always\n")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    # libgit2 reads HOME once, when it starts: point its config search at the
    # sealed home too, so pygit2 never sees the real user's ~/.gitconfig.
    empty = tmp_path / "no-system-config"
    empty.mkdir()
    search = pygit2.settings.search_path
    saved = {level: search[level] for level in (ConfigLevel.GLOBAL, ConfigLevel.XDG, ConfigLevel.SYSTEM)}
    search[ConfigLevel.GLOBAL] = str(home)
    search[ConfigLevel.XDG] = str(home / ".config")
    search[ConfigLevel.SYSTEM] = str(empty)
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-01-01T00:00:00+00:00")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T00:00:00+00:00")
    threads = set(threading.enumerate())
    yield tmp_path
    for level, value in saved.items():
        search[level] = value
    assert _snapshot() == before, "the test touched the real user's errauto state"
    leaked = _leaked_threads(threads)
    assert not leaked, f"threads leaked: {leaked}"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store() -> Iterator[Store]:
    """The store under the sealed ERRAUTO_HOME, closed when the test ends."""
    s = Store()
    yield s
    s.close()


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    return python_project(tmp_path / "project")


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    r = GitRepo(tmp_path / "repo")
    r.commit("initial", {"README": "hello\n"})
    return r


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons a test starts (`tests.helpers.daemon.start`); killed when it ends."""
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.kill()


@pytest.fixture
def server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """A bare server repository with errauto's post-receive hook, and a developer's clone."""
    from errauto_daemon.main import main

    seed = python_project(tmp_path / "seed")
    bare = tmp_path / "server.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed.path), str(bare))
    assert main(["hooks", "install", "--repo", str(bare), "--server"]) == 0
    capsys.readouterr()
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(bare), str(dev))
    return bare, dev
