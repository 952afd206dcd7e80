"""Submitted patch bytes on disk, content-addressed by their sha256 (and, on a shared server
database, in it: `Patches`)."""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from errauto_daemon import paths
from errauto_daemon.store.db import Backend


def patch_file(sha256: str) -> Path:
    return paths.patches_dir() / f"{sha256}.patch"


def store_patch_bytes(data: bytes) -> str:
    """Write `data` content-addressed (atomically, fsynced); returns its sha256."""
    digest = hashlib.sha256(data).hexdigest()
    target = patch_file(digest)
    if target.exists() and target.stat().st_size == len(data):
        return digest
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return digest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Patches:
    """A submission's patch bytes: in a file of the state directory, content-addressed; on a shared
    server database also in the `patches` table, so every machine reads what any machine took in
    (the file is then this machine's copy, made on first read)."""

    _db: Backend

    def save_patch(self, data: bytes) -> str:
        """Keep `data`; returns its sha256, which names it."""
        digest = store_patch_bytes(data)
        if self._db.shared:
            with self._db.transaction() as tx:
                tx.insert_new("patches", [{"sha256": digest, "data": data, "created_at": time.time()}])
        return digest

    def read_patch(self, sha256: str) -> bytes:
        """The bytes of the patch named `sha256` (a submission's `patch_sha256`); FileNotFoundError
        when they are gone."""
        try:
            return patch_file(sha256).read_bytes()
        except FileNotFoundError:
            if not self._db.shared:
                raise
        row = self._db.read.row("SELECT data FROM patches WHERE sha256 = ?", (sha256,))
        if row is None:
            raise FileNotFoundError(f"no patch {sha256} in {self._db}")
        data = bytes(row["data"])
        if hashlib.sha256(data).hexdigest() != sha256:
            raise FileNotFoundError(f"the stored patch {sha256} does not match its digest")
        store_patch_bytes(data)
        return data
