"""The read-only queries behind `errauto web`: the queue a page at a time, its filters.

Pages are keyset pages on the submission id (newest first): the next page
starts below the last id shown, so a page costs the same however deep it
is, and a submission decided meanwhile does not shift the rows under the
reader. A title search is a substring match (LIKE with its wildcards
escaped), case-insensitive for ASCII as SQLite's LIKE is.
"""
from __future__ import annotations

from typing import Any

from errauto_daemon.store.db import Backend, placeholders
from errauto_daemon.store.records import FilterChoices, QueueFilter, QueuePage, Submission


def _like(text: str) -> str:
    """`text` as a LIKE pattern matching it anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(wanted: QueueFilter, below: int | None, like: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if wanted.states:
        clauses.append(f"state IN ({placeholders(len(wanted.states))})")
        args += list(wanted.states)
    if wanted.routes:
        clauses.append(f"route IN ({placeholders(len(wanted.routes))})")
        args += list(wanted.routes)
    for column, value in (("repo", wanted.repo), ("source", wanted.source)):
        if value:
            clauses.append(f"{column} = ?")
            args.append(value)
    if wanted.title:
        clauses.append(f"title {like} ? ESCAPE '\\'")
        args.append(_like(wanted.title))
    if below is not None:
        clauses.append("id < ?")
        args.append(below)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


class Browse:
    _db: Backend

    def queue_page(self, wanted: QueueFilter, *, below: int | None = None, size: int = 50) -> QueuePage:
        """Up to `size` submissions matching `wanted`, newest first, each with an id below `below`."""
        where, args = _where(wanted, below, self._db.like())
        rows = self._db.read.rows(f"SELECT * FROM submissions{where} ORDER BY id DESC LIMIT ?", [*args, size + 1])
        shown = tuple(Submission.from_row(r) for r in rows[:size])
        return QueuePage(shown, shown[-1].id if len(rows) > size else None)

    def filter_choices(self) -> FilterChoices:
        read = self._db.read
        repos = [r[0] for r in read.tuples("SELECT DISTINCT repo FROM submissions ORDER BY repo")]
        sources = [r[0] for r in read.tuples("SELECT DISTINCT source FROM submissions ORDER BY source")]
        return FilterChoices(tuple(repos), tuple(sources))

    def last_change(self, sub_id: int | None = None) -> int:
        """A number that grows whenever any submission (or the one asked for) changes: the newest
        event's id (for polling)."""
        if sub_id is None:
            return int(self._db.read.first("SELECT COALESCE(MAX(id), 0) FROM events")[0])
        return int(self._db.read.first("SELECT COALESCE(MAX(id), 0) FROM events WHERE submission_id = ?",
                                       (sub_id,))[0])

