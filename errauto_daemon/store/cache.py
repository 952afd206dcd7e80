"""What spares running checks again: validations by (base tree, patch, check
configuration), and the coverage and per-test outcomes of a base tree per
check configuration; and the tests seen to be flaky."""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from errauto_daemon.store.db import Backend


class Cache:
    _db: Backend

    def cached_validation(self, base_tree: str, dedup_key: str,
                          fingerprint: str) -> tuple[str, dict[str, Any]] | None:
        row = self._db.read.row(
            "SELECT result_tree, results FROM validations WHERE base_tree = ? AND dedup_key = ? "
            "AND fingerprint = ?", (base_tree, dedup_key, fingerprint))
        return (row["result_tree"], json.loads(row["results"])) if row is not None else None

    def cache_validation(self, base_tree: str, dedup_key: str, fingerprint: str,
                         result_tree: str, results: dict[str, Any]) -> None:
        with self._db.transaction() as tx:
            tx.replace("validations", {"base_tree": base_tree, "dedup_key": dedup_key, "fingerprint": fingerprint,
                                       "result_tree": result_tree, "results": json.dumps(results),
                                       "created_at": time.time()})

    def baseline(self, repo: str, base_tree: str, check: str, fingerprint: str) -> tuple[bool, float | None]:
        """Whether the coverage of `base_tree` is known, and what it is (None: the check gave none)."""
        row = self._db.read.row(
            "SELECT value FROM baselines WHERE repo = ? AND base_tree = ? AND check_name = ? "
            "AND fingerprint = ?", (repo, base_tree, check, fingerprint))
        return (True, row["value"]) if row is not None else (False, None)

    def baseline_tests(self, repo: str, base_tree: str, check: str, fingerprint: str) -> dict[str, str] | None:
        """Each test's outcome on `base_tree` (node id -> outcome), if that check wrote a report there."""
        row = self._db.read.row(
            "SELECT tests FROM baselines WHERE repo = ? AND base_tree = ? AND check_name = ? "
            "AND fingerprint = ?", (repo, base_tree, check, fingerprint))
        if row is None or row["tests"] is None:
            return None
        tests = json.loads(row["tests"])
        return {str(k): str(v) for k, v in tests.items()} if isinstance(tests, dict) else None

    def set_baseline(self, repo: str, base_tree: str, check: str, fingerprint: str,
                     value: float | None, tests: Mapping[str, str] | None = None) -> None:
        with self._db.transaction() as tx:
            tx.replace("baselines", {"repo": repo, "base_tree": base_tree, "check_name": check,
                                     "fingerprint": fingerprint, "value": value, "created_at": time.time(),
                                     "tests": None if tests is None else json.dumps(dict(tests), sort_keys=True)})

    def record_flaky(self, repo: str, sub_id: int | None, flakes: Sequence[tuple[str, int, int]]) -> None:
        """Tests (node id, runs, failures) that failed and passed again in one validation."""
        now = time.time()
        with self._db.transaction() as tx:
            tx.execute_many("INSERT INTO flaky_tests (repo, test, submission_id, runs, failures, ts) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            [(repo, test, sub_id, runs, failures, now) for test, runs, failures in flakes])

    def flakiest(self, since: float, limit: int = 10) -> list[tuple[str, str, int, int, int]]:
        """(repo, test, validations it was flaky in, runs, failures) since `since`, the most often flaky first."""
        return [(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in self._db.read.tuples(
            "SELECT repo, test, COUNT(*), SUM(runs), SUM(failures) FROM flaky_tests WHERE ts >= ? "
            "GROUP BY repo, test ORDER BY COUNT(*) DESC, SUM(failures) DESC, test LIMIT ?", (since, limit))]
