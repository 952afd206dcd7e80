"""The read-only queries behind `errauto web`: keyset pages, filters, and a connection that cannot write."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from errauto_daemon.domain import State
from errauto_daemon.errors import ConfigError
from errauto_daemon.store import QueueFilter, ReadOnlyStore, Store


def fill(store: Store, n: int) -> None:
    """`n` submissions #1..#n: odd ones in /r/odd from the inbox, even ones in /r/even from the CLI."""
    for i in range(1, n + 1):
        odd = i % 2 == 1
        store.insert_submission(
            repo="/r/odd" if odd else "/r/even", target="main", source="inbox" if odd else "cli",
            source_detail=None, title=f"fix {i}" + (" 100% of cases" if i == 7 else ""), author=None,
            note=None, patch_sha256=f"{i:064x}", dedup_key=f"k{i}")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "state.db")
    fill(store, 12)
    return store


def test_pages_walk_every_submission_once_newest_first(store: Store) -> None:
    reader = ReadOnlyStore(store.path)
    seen: list[int] = []
    below = None
    while True:
        page = reader.queue_page(QueueFilter(), below=below, size=5)
        seen += [s.id for s in page.submissions]
        if page.older is None:
            break
        below = page.older
    assert seen == list(range(12, 0, -1))


def test_a_page_that_ends_exactly_has_no_older_page(store: Store) -> None:
    page = ReadOnlyStore(store.path).queue_page(QueueFilter(), size=12)
    assert len(page.submissions) == 12 and page.older is None


def test_filters_combine(store: Store) -> None:
    store.reject(3, "rejected by someone: no", "rejected by someone")
    store.reject(4, "rejected by someone: no", "rejected by someone")
    reader = ReadOnlyStore(store.path)

    def ids(wanted: QueueFilter) -> list[int]:
        return [s.id for s in reader.queue_page(wanted, size=100).submissions]

    assert ids(QueueFilter(states=(State.REJECTED,))) == [4, 3]
    assert ids(QueueFilter(states=(State.REJECTED,), repo="/r/odd")) == [3]
    assert ids(QueueFilter(source="cli")) == [12, 10, 8, 6, 4, 2]
    assert ids(QueueFilter(title="FIX 1")) == [12, 11, 10, 1]  # a substring, any case
    # LIKE's wildcards in the search are taken as themselves.
    assert ids(QueueFilter(title="100%")) == [7]
    assert ids(QueueFilter(title="_")) == []
    assert ids(QueueFilter(states=(State.MERGED,))) == []


def test_filter_choices_are_what_the_store_holds(store: Store) -> None:
    choices = ReadOnlyStore(store.path).filter_choices()
    assert choices.repos == ("/r/even", "/r/odd") and choices.sources == ("cli", "inbox")


def test_last_change_grows_with_every_change(store: Store) -> None:
    reader = ReadOnlyStore(store.path)
    before = reader.last_change()
    store.reject(5, "rejected by someone: no", "rejected by someone")
    assert reader.last_change() > before


def test_a_submissions_last_change_grows_only_with_its_own_changes(store: Store) -> None:
    reader = ReadOnlyStore(store.path)
    five, six = reader.last_change(5), reader.last_change(6)
    store.reject(5, "rejected by someone: no", "rejected by someone")
    assert reader.last_change(5) > five and reader.last_change(6) == six
    assert reader.last_change(5) == reader.last_change()  # the newest change of all is its own


def test_the_read_only_store_cannot_write(store: Store) -> None:
    reader = ReadOnlyStore(store.path)
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
        reader.reject(1, "no", "no")
    assert store.get(1).state == State.QUEUED


def test_no_database_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no state database"):
        ReadOnlyStore(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
