"""The daemon's parts in this process: watching, feeding workers, its log, error alerts."""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from errauto_daemon import paths
from errauto_daemon.config import Config
from errauto_daemon.daemon.alerts import ErrorAlerts
from errauto_daemon.daemon.logs import DaemonLogFile, setup_logging
from errauto_daemon.daemon.watch import Watch
from errauto_daemon.daemon.workers import Workers
from errauto_daemon.store import Store
from tests.helpers.gitrepo import GitRepo

TOKEN = "ghp_s3cr3tT0k3nValue"
T = TypeVar("T")


@pytest.fixture
def errauto_log() -> Iterator[logging.Logger]:
    """The "errauto" logger, its handlers and level as they were afterwards."""
    logger = logging.getLogger("errauto")
    handlers, level = list(logger.handlers), logger.level
    yield logger
    for handler in logger.handlers:
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)


def queued(store: Store, n: int) -> int:
    sub, _ = store.insert_submission(repo="/r", target="main", source="cli", source_detail=None,
                                     title=f"patch {n}", author=None, note=None, patch_sha256="0" * 64,
                                     dedup_key=f"k{n}")
    return sub.id


def drain(q: queue.Queue[T]) -> list[T]:
    return [q.get_nowait() for _ in range(q.qsize())]


def test_each_queued_submission_is_handed_to_the_workers_once_while_in_flight(store: Store) -> None:
    workers = Workers(stopping=threading.Event())
    first, second = queued(store, 1), queued(store, 2)
    workers.feed(store)
    workers.feed(store)  # the scheduler feeds on every turn
    assert drain(workers.work_q) == [first, second]
    third = queued(store, 3)
    workers.feed(store)
    assert drain(workers.work_q) == [third]


def test_workers_as_asked_or_as_configured(store: Store) -> None:
    assert Workers(stopping=threading.Event(), wanted=3).count(store) == 3
    assert Workers(stopping=threading.Event()).count(store) == Config.workers  # nothing registered


def test_watching_follows_the_registered_repositories(repo: GitRepo, tmp_path: Path) -> None:
    watch = Watch(wakeup=threading.Event(), stopping=threading.Event())
    root, gone = str(repo.path), str(tmp_path / "gone")
    watch.start()
    try:
        watch.sync({root, gone})
        assert list(watch.watched) == [root] and watch.unwatchable == {gone}
        assert len(watch.watched[root]) == 3  # the inbox, refs/, the git dir's own files
        assert drain(watch.intake_q) == [("scan", root)]
        watch.sync({root, gone})  # nothing changed: nothing to do
        assert watch.intake_q.empty()
        watch.sync(set())
        assert watch.watched == {} and watch.unwatchable == set()
    finally:
        watch.stop()


def test_the_daemon_log_is_set_up_once_and_redacts(errauto_log: logging.Logger,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    setup_logging(verbose=False)
    setup_logging(verbose=False)
    files = [h for h in errauto_log.handlers if isinstance(h, DaemonLogFile)]
    assert len(files) == 1
    errauto_log.info("cloned with %s", TOKEN)
    files[0].flush()
    text = (paths.log_dir() / "daemon.log").read_text()
    assert "INFO [MainThread] cloned with ***" in text and TOKEN not in text


def test_a_logged_error_becomes_one_redacted_line_for_an_alert(errauto_log: logging.Logger,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    setup_logging(verbose=False)  # its filter formats the traceback before the alert handler sees it
    errors: queue.Queue[str] = queue.Queue()
    errauto_log.addHandler(ErrorAlerts(errors))
    try:
        raise RuntimeError(f"push refused for {TOKEN}")
    except RuntimeError:
        errauto_log.exception("submission 7: internal error")
    errauto_log.warning("only a warning")
    assert [errors.get_nowait() for _ in range(errors.qsize())] == [
        "[MainThread] submission 7: internal error (RuntimeError: push refused for ***)"]
