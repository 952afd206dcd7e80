"""The state database on a real PostgreSQL server (tests/helpers/postgres.py): choosing it, its
schema, what it shares between machines, and what a check must not reach.

The whole suite runs on PostgreSQL as well (the `backend` fixture of
conftest.py); these are about the server itself.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pygit2
import pytest

from errauto_daemon import checks, paths
from errauto_daemon.domain import State
from errauto_daemon.errors import ConfigError, FatalError
from errauto_daemon.store import SCHEMA_VERSION, ReadOnlyStore, Store
from errauto_daemon.store.where import configured, shown, socket_dirs
from errauto_daemon.workspace import Pool
from tests.conftest import fresh_database_url
from tests.helpers.cli import run
from tests.helpers.gitrepo import CALC, PYTHON, config_toml, git, python_project
from tests.helpers.postgres import PostgresServer
from tests.test_recovery import FIXED, UNSANDBOXED, counting_check

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])  # about the server: once, not per backend


def empty_schema_url(server: PostgresServer, name: str) -> str:
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return f"{server.url}&options=-csearch_path%3D{name}"


@pytest.fixture
def url(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated schema of its own, named by ERRAUTO_DATABASE_URL as a user would."""
    value = fresh_database_url(postgres)
    monkeypatch.setenv("ERRAUTO_DATABASE_URL", value)
    return value


def new(store: Store, n: int) -> int:
    sub, _ = store.insert_submission(repo="/r", target="main", source="cli", source_detail=None,
                                     title=f"patch {n}", author=None, note=None,
                                     patch_sha256=f"{n:064x}", dedup_key=f"k{n}")
    return sub.id


# -- choosing the database -------------------------------------------------------------------


def test_the_environment_names_the_server_and_overrides_the_users_configuration(
        postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERRAUTO_DATABASE_URL", raising=False)
    assert configured() == paths.db_path()  # nothing said: the SQLite file
    from_file = fresh_database_url(postgres)
    paths.config_file().parent.mkdir(parents=True, exist_ok=True)
    paths.config_file().write_text(f'[database]\nurl = "{from_file}"\n')
    assert configured() == from_file
    from_env = fresh_database_url(postgres)
    monkeypatch.setenv("ERRAUTO_DATABASE_URL", from_env)
    assert configured() == from_env
    monkeypatch.setenv("ERRAUTO_DATABASE_URL", "sqlite")
    assert configured() == paths.db_path()
    monkeypatch.setenv("ERRAUTO_DATABASE_URL", "mysql://db/errauto")
    with pytest.raises(ConfigError, match="must be \"sqlite\" or a postgresql:// URL"):
        configured()


def test_a_home_of_its_own_keeps_its_own_sqlite_file(url: str, tmp_path: Path) -> None:
    with paths.home(tmp_path / "demo"):
        assert configured() == tmp_path / "demo" / "errauto.db"
        assert "ERRAUTO_DATABASE_URL" not in paths.child_env()


def test_db_migrate_creates_the_schema_and_commands_wait_for_it(
        postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ERRAUTO_DATABASE_URL", empty_schema_url(postgres, "fresh_one"))
    code, _, err = run(capsys, "queue", "list")
    assert code == 5 and "no errauto schema yet: run `errauto db migrate`" in err

    code, out, _ = run(capsys, "db", "migrate")
    assert code == 0 and f"-> {SCHEMA_VERSION}" in out
    code, out, _ = run(capsys, "db", "migrate")
    assert code == 0 and "nothing to do" in out
    code, out, _ = run(capsys, "db", "status", "--json")
    assert code == 0 and '"backend": "postgresql"' in out and f'"schema": {SCHEMA_VERSION}' in out
    assert json.loads(out)["job_queue"] is True  # the job queue's tables came with the schema
    assert run(capsys, "queue", "list")[0] == 0


def test_a_daemon_refuses_a_server_without_the_job_queue(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    Store().sql("DROP TABLE procrastinate_jobs CASCADE")
    code, out, _ = run(capsys, "db", "status")
    assert code == 0 and "job queue missing: run `errauto db migrate`" in out
    code, _, err = run(capsys, "daemon", "run")
    assert code == 5 and "has no job queue yet: run `errauto db migrate`" in err


def test_a_schema_this_errauto_does_not_know_is_refused(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    Store().sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(FatalError, match="newer errauto"):
        Store()
    code, _, err = run(capsys, "daemon", "run")
    assert code == 2 and f"schema 99, this one knows {SCHEMA_VERSION}" in err  # as for a newer SQLite file


def test_an_older_schema_waits_for_db_migrate(url: str) -> None:
    Store().sql("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    with pytest.raises(ConfigError, match=f"has schema 4, this errauto needs {SCHEMA_VERSION}"):
        Store()


def test_a_password_in_the_url_is_never_shown(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    value = fresh_database_url(postgres).replace("postgresql://postgres@", "postgresql://postgres:hunter2secret@")
    assert shown(value).startswith("postgresql://postgres:***@")
    monkeypatch.setenv("ERRAUTO_DATABASE_URL", value)
    code, out, err = run(capsys, "db", "status")
    assert code == 0 and "hunter2secret" not in out + err and ":***@" in out
    unreachable = value.replace(str(postgres.root), "/nonexistent/socket")
    monkeypatch.setenv("ERRAUTO_DATABASE_URL", unreachable)
    code, out, err = run(capsys, "queue", "list")
    assert code == 5 and "cannot use the state database" in err and "hunter2secret" not in out + err


# -- what the server gives that a file cannot -----------------------------------------------------


def test_a_read_only_store_cannot_write(url: str) -> None:
    store = Store()
    sub = new(store, 1)
    reader = ReadOnlyStore()
    assert reader.get(sub).state == State.QUEUED
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        reader.reject(sub, "no", "no")
    assert store.get(sub).state == State.QUEUED


HOLDER = """
import sys, time
from errauto_daemon.store import Store
with Store().hold(int(sys.argv[1])) as taken:
    print("taken" if taken else "refused", flush=True)
    time.sleep(600)
"""


def test_a_hold_belongs_to_its_process_and_dies_with_it(url: str) -> None:
    store = Store()
    sub = new(store, 1)
    holder = subprocess.Popen([PYTHON, "-c", HOLDER, str(sub)], stdout=subprocess.PIPE, text=True,
                              env=os.environ.copy())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "taken"
        with store.hold(sub) as taken:
            assert taken is False  # another process (another machine, for the server) works on it
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        deadline = time.monotonic() + 30
        while True:  # the server ends the dead session, and its lock with it
            with store.hold(sub) as taken:
                if taken:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        holder.kill()
        holder.wait()


def test_patch_bytes_taken_in_on_one_machine_are_read_on_another(url: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"From 1 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] x\n\n---\n"
    digest = Store().save_patch(data)
    sub, _ = Store().insert_submission(repo="/r", target="main", source="cli", source_detail=None, title="x",
                                       author=None, note=None, patch_sha256=digest, dedup_key="k")
    monkeypatch.setenv("ERRAUTO_HOME", str(tmp_path / "other-machine"))
    assert not paths.patches_dir().joinpath(f"{digest}.patch").exists()
    assert Store().read_patch(sub.patch_sha256) == data
    assert paths.patches_dir().joinpath(f"{digest}.patch").read_bytes() == data  # kept here from now on


def test_a_restarted_server_is_used_again(url: str, postgres: PostgresServer) -> None:
    store = Store()
    first = new(store, 1)
    postgres.restart()
    assert store.get(first).state == State.QUEUED  # a read on a new connection
    second = new(store, 2)  # a transaction on a new connection
    assert [s.id for s in store.submissions()] == [second, first]


def test_sums_and_local_dates_come_back_as_sqlite_gives_them(url: str) -> None:
    store = Store()
    for n in range(3):
        store.claim(new(store, n))
    counts = store.sql("SELECT SUM(attempts), COUNT(*) FROM submissions")[0]
    assert counts == (3, 3) and all(type(v) is int for v in counts)
    day = store.sql(f"SELECT {store._db.local_date('created_at')} FROM submissions")[0][0]
    assert day == time.strftime("%Y-%m-%d", time.localtime())


# -- what a check may not reach --------------------------------------------------------------


def test_a_check_sees_neither_the_password_nor_the_servers_socket(url: str, postgres: PostgresServer,
                                                                 tmp_path: Path) -> None:
    env = checks.check_env((), base={"PGPASSWORD": "s3cret", "PGPASSFILE": "/x", "ERRAUTO_DATABASE_URL": url,
                                     "PATH": "/usr/bin"})
    assert set(env) == {"PATH", "PYTHONDONTWRITEBYTECODE"}
    assert socket_dirs(url) == (postgres.root,)
    project = python_project(tmp_path / "proj")
    repo = project.pygit2()
    with Pool(repo, size=1).acquire(repo.revparse_single("HEAD").peel(pygit2.Commit)) as slot:
        assert postgres.root in slot.view().hidden  # the slot's view, as the sandbox is given it


def test_a_validation_on_the_server_runs_end_to_end(url: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    project = python_project(tmp_path / "proj")
    patch = tmp_path / "fix.patch"
    patch.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))
    code, out, _ = run(capsys, "apply", str(patch), "--repo", str(project.path), "--json")
    assert code == 0 and '"state": "merged"' in out
    assert "a + b" in project.read("calc.py")
    with psycopg.connect(url) as conn:  # the decision is in the server's tables
        assert conn.execute("SELECT state FROM submissions").fetchall() == [("merged",)]


def test_a_patch_validated_on_one_machine_is_not_validated_again_on_another(url: str, tmp_path: Path) -> None:
    """Two machines (two state directories, two clones of one repository) on one server: the second
    finds the first's validation of the same patch on the same base tree and runs no check."""
    counter = tmp_path / "runs"
    first = python_project(tmp_path / "a" / "proj", config=config_toml(top=UNSANDBOXED,
                                                                         extra=counting_check(counter)))
    second = tmp_path / "b" / "proj"
    git(tmp_path, "clone", "-q", str(first.path), str(second))
    patch = tmp_path / "p.patch"
    patch.write_bytes(first.make_patch({"calc.py": FIXED + "#" * 90 + "\n"}))  # lint fails: held

    def apply_on(machine: str, repo: Path) -> dict[str, object]:
        env = {**os.environ, "ERRAUTO_HOME": str(tmp_path / machine / "state")}
        done = subprocess.run([PYTHON, "-m", "errauto_daemon", "apply", str(patch), "--repo", str(repo), "--json"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 1, done.stderr
        result: dict[str, object] = json.loads(done.stdout)
        return result

    a = apply_on("a", first.path)
    assert counter.read_text() == "1"
    b = apply_on("b", second)
    assert counter.read_text() == "1"  # no check ran on the second machine
    assert b["id"] != a["id"] and b["confidence"] == a["confidence"]
    assert any("reused" in n for n in b["explanation"]["notes"])  # type: ignore[index]


def test_two_states_in_one_database_do_not_share_holds(postgres: PostgresServer) -> None:
    """Advisory locks belong to the database, not the schema: each state's locks are its own."""
    one, other = Store(fresh_database_url(postgres)), Store(fresh_database_url(postgres))
    assert new(one, 1) == new(other, 1) == 1  # the same submission id in each
    with one.hold(1) as taken:
        assert taken
        with other.hold(1) as also:
            assert also  # another errauto's submission #1, not this one's
        with Store(one.where).hold(1) as again:
            assert not again  # this errauto's own, held


def test_a_hold_lost_with_the_servers_session_fences_its_holder(url: str, postgres: PostgresServer) -> None:
    """A restart ends every session, holds included, under a holder that is still working: another
    worker may recover the submission, and the old holder's next write about it is refused."""
    from errauto_daemon.errors import HoldLost

    store = Store(url)
    sub_id = new(store, 1)
    with store.hold(sub_id) as held:
        assert held and store.claim(sub_id) is not None
        postgres.restart()
        recoverer = Store(url)
        with recoverer.hold(sub_id) as taken:
            assert taken  # the old session's lock went with it
            assert recoverer.requeue(sub_id, "recovered: its worker lost the server")
        recoverer.close()
        with pytest.raises(HoldLost):
            store.transition(sub_id, State.MERGED, expect=(State.QUEUED, State.VALIDATING))
        with pytest.raises(HoldLost):
            store.requeue(sub_id, "interrupted")
    assert store.get(sub_id).state == State.QUEUED
    store.close()


def test_a_named_lock_is_held_across_machines_and_re_entrant(url: str) -> None:
    """`serial`: what serialises merges into one target on every machine of a shared state."""
    import threading

    mine, theirs = Store(url), Store(url)
    order: list[str] = []
    with mine.serial("merge origin main"):
        with mine.serial("merge origin main"):  # re-entrant in its thread
            pass

        def other() -> None:
            with theirs.serial("merge origin main"):
                order.append("theirs")
            theirs.close()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive() and order == []  # waits for mine
        with theirs.serial("merge origin other-branch"):  # another name does not wait
            order.append("another")
        order.append("mine released")
    thread.join(10)
    assert order == ["another", "mine released", "theirs"]
    mine.close()
