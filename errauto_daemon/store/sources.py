"""Where submissions come from: registered repositories (and those whose
configuration cannot be used), files taken from inbox folders, submit refs
already turned into submissions, and the pushed commits errauto merged as its
own rewrite (to tell their pusher)."""
from __future__ import annotations

import re
import socket
import time

from errauto_daemon import paths
from errauto_daemon.domain import State
from errauto_daemon.store.db import Backend
from errauto_daemon.store.outbox import insert_alert
from errauto_daemon.store.records import ConfigProblem, InboxFile, Replacement


def machine() -> tuple[str, str]:
    """This process's machine as the database tells machines apart: its host, its state directory."""
    return socket.gethostname(), str(paths.state_dir())


def machine_name() -> str:
    """`machine()` in one column (`host:state directory`): who recorded a submission, took a file."""
    return ":".join(machine())


_REPLACES = re.compile(r"replaces ([0-9a-f]+) with ([0-9a-f]+)")


class Sources:
    _db: Backend

    # -- repositories ----------------------------------------------------------------

    def add_repo(self, path: str, remote: str | None = None) -> bool:
        """Register a clone on this machine (this state directory); `remote`: the repository's name
        in a cluster, its push remote's URL (`repo.remote_name`). Re-registering updates it.
        A SQLite file is one machine's: its rows name none, so a renamed host keeps them."""
        host, home = machine() if self._db.shared else ("", "")
        with self._db.transaction() as tx:
            known = tx.row("SELECT remote FROM repos WHERE host IN ('', ?) AND home IN ('', ?) AND path = ?",
                           (host, home, path))
            if known is not None:
                if known["remote"] != remote:
                    tx.execute("UPDATE repos SET remote = ? WHERE host IN ('', ?) AND home IN ('', ?) AND path = ?",
                               (remote, host, home, path))
                return False
            return tx.insert_new("repos", [{"host": host, "home": home, "path": path, "remote": remote,
                                            "added_at": time.time()}]) == 1

    def remove_repo(self, path: str) -> bool:
        host, home = machine()
        with self._db.transaction() as tx:
            removed = tx.execute("DELETE FROM repos WHERE host IN ('', ?) AND home IN ('', ?) AND path = ?",
                                 (host, home, path))
            if not tx.row("SELECT 1 AS one FROM repos WHERE path = ?", (path,)):
                tx.execute("DELETE FROM config_problems WHERE repo = ?", (path,))
            return removed >= 1

    def repos(self) -> list[str]:
        """The repositories this machine (this state directory) registered."""
        host, home = machine()
        return [r[0] for r in self._db.read.tuples(
            "SELECT DISTINCT path FROM repos WHERE host IN ('', ?) AND home IN ('', ?) ORDER BY path", (host, home))]

    def clone_of(self, remote: str) -> str | None:
        """This machine's registered clone of the repository named `remote`, if it has one."""
        host, home = machine()
        row = self._db.read.row("SELECT path FROM repos WHERE remote = ? AND host IN ('', ?) AND home IN ('', ?) "
                                "ORDER BY path LIMIT 1", (remote, host, home))
        return row["path"] if row else None

    # -- configurations that cannot be used --------------------------------------------

    def config_invalid(self, repo: str, digest: str, error: str) -> int | None:
        """Record that `repo`'s configuration (`digest`) cannot be used; alert the first time
        for that configuration. Returns the alert's id, if one was raised."""
        now = time.time()
        with self._db.transaction() as tx:
            row = tx.row("SELECT digest, since FROM config_problems WHERE repo = ?", (repo,))
            if row is not None and row["digest"] == digest:
                tx.execute("UPDATE config_problems SET checked_at = ? WHERE repo = ?", (now, repo))
                return None
            tx.replace("config_problems", {"repo": repo, "digest": digest, "error": error, "since": now,
                                           "checked_at": now})
            return insert_alert(tx, "config_invalid", now, None,
                                f"the configuration of {repo} cannot be used: {error}",
                                {"repo": repo, "digest": digest})

    def config_valid(self, repo: str) -> bool:
        """`repo`'s configuration loads (again); whether a problem was recorded for it."""
        with self._db.transaction() as tx:
            return tx.execute("DELETE FROM config_problems WHERE repo = ?", (repo,)) == 1

    def config_problems(self, repo: str | None = None) -> list[ConfigProblem]:
        """The watched repositories whose configuration cannot be used (one, with `repo`)."""
        query = "SELECT repo, digest, error, since FROM config_problems"
        args: tuple[str, ...] = ()
        if repo is not None:
            query, args = query + " WHERE repo = ?", (repo,)
        return [ConfigProblem(r["repo"], r["digest"], r["error"], r["since"])
                for r in self._db.read.rows(query + " ORDER BY repo", args)]

    # -- files taken from inbox folders ------------------------------------------------

    def add_inbox_file(self, sub_id: int, repo: str, path: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("INSERT INTO inbox_files (submission_id, repo, path, taken_at, machine) VALUES (?, ?, ?, ?, ?)",
                       (sub_id, repo, path, time.time(), machine_name()))

    def inbox_files(self, sub_id: int) -> list[InboxFile]:
        return [InboxFile(r["id"], r["submission_id"], r["repo"], r["path"], r["machine"]) for r in self._db.read.rows(
            "SELECT id, submission_id, repo, path, machine FROM inbox_files WHERE submission_id = ? ORDER BY id",
            (sub_id,))]

    def waiting_inbox_files(self, folder: str, limit: int = 200) -> list[int]:
        """Decided submissions with a file this machine took still in the inbox's `folder` (where taken
        files wait for their decision): decided on another machine, which cannot move this one's files."""
        undecided = (State.QUEUED, State.VALIDATING)
        return [int(r[0]) for r in self._db.read.tuples(
            "SELECT DISTINCT f.submission_id FROM inbox_files f JOIN submissions s ON s.id = f.submission_id "
            "WHERE f.machine = ? AND s.state NOT IN (?, ?) AND f.path LIKE ? ORDER BY f.submission_id LIMIT ?",
            (machine_name(), *undecided, f"%/{folder}/%", limit))]

    def inbox_file_moved(self, file_id: int, path: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("UPDATE inbox_files SET path = ? WHERE id = ?", (path, file_id))

    # -- refs the daemon has turned into submissions -------------------------------

    def ref_seen(self, repo: str, ref: str) -> str | None:
        row = self._db.read.row("SELECT sha FROM refs_seen WHERE repo = ? AND ref = ?", (repo, ref))
        return str(row["sha"]) if row is not None else None

    def set_ref_seen(self, repo: str, ref: str, sha: str, sub_id: int | None) -> None:
        with self._db.transaction() as tx:
            tx.replace("refs_seen", {"repo": repo, "ref": ref, "sha": sha, "submission_id": sub_id,
                                     "seen_at": time.time()})

    def unannounced_replacements(self, repo: str, within: float = 14 * 86400) -> list[Replacement]:
        """Pushed commits merged as errauto's rewrite in the last `within` seconds
        whose pusher has not been told yet (`replaced` events without an
        `announced` one). Read on every push: it starts from the repository's
        recently decided submissions, not from all events."""
        rows = self._db.read.rows(
            "SELECT e.submission_id, s.author, e.detail FROM submissions s JOIN events e "
            "ON e.submission_id = s.id WHERE s.repo = ? AND s.state = ? AND s.decided_at > ? "
            "AND e.kind = 'replaced' AND NOT EXISTS "
            "(SELECT 1 FROM events a WHERE a.submission_id = s.id AND a.kind = 'announced') "
            "ORDER BY e.id", (repo, State.MERGED, time.time() - within))
        out = []
        for row in rows:
            found = _REPLACES.fullmatch(row["detail"] or "")
            if found:
                out.append(Replacement(int(row["submission_id"]), row["author"], found[1], found[2]))
        return out
