"""Every file, directory and symlink under a folder, to compare before and after."""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

Entry = tuple[int, int, int, str | None]


def snapshot(root: Path, *, skip: tuple[Path, ...]) -> dict[str, Entry]:
    """Every file, directory and symlink under `root` (without following links)."""
    out: dict[str, Entry] = {}
    st = os.lstat(root)
    out["."] = (st.st_mode, 0, st.st_mtime_ns, None)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if here / n not in skip)
        for name in dirnames + sorted(filenames):
            path = here / name
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                digest: str | None = "-> " + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                digest = None
            size = st.st_size if not stat.S_ISDIR(st.st_mode) else 0
            out[str(path.relative_to(root))] = (st.st_mode, size, st.st_mtime_ns, digest)
    return out


def snapshot_diff(before: dict[str, Entry], after: dict[str, Entry],
                  mtime_may_change: tuple[str, ...] = ()) -> list[str]:
    def same(p: str) -> bool:
        if p in mtime_may_change:
            return before[p][:2] + before[p][3:] == after[p][:2] + after[p][3:]
        return before[p] == after[p]
    lines = [f"+ {p}" for p in sorted(after.keys() - before.keys())]
    lines += [f"- {p}" for p in sorted(before.keys() - after.keys())]
    lines += [f"~ {p}: {before[p]} -> {after[p]}"
              for p in sorted(before.keys() & after.keys()) if not same(p)]
    return lines
