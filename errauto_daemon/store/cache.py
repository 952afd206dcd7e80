"""What spares running checks again: validations by (base tree, patch, check
configuration), and the coverage of a base tree per check configuration."""
from __future__ import annotations

import json
import time
from typing import Any

from errauto_daemon.store.db import Database


class Cache:
    _db: Database

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

    def set_baseline(self, repo: str, base_tree: str, check: str, fingerprint: str,
                     value: float | None) -> None:
        with self._db.transaction() as tx:
            tx.replace("baselines", {"repo": repo, "base_tree": base_tree, "check_name": check,
                                     "fingerprint": fingerprint, "value": value, "created_at": time.time()})
