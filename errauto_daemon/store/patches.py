"""Submitted patch bytes on disk, content-addressed by their sha256."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from errauto_daemon import paths


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
