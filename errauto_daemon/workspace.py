"""A pool of linked worktrees in which patches are proven.

Each slot is a linked worktree of the user's repository, detached, under the
user cache dir (`git worktree list` shows them as `errauto-N`). A slot is
created once (the only full checkout it ever does) and then reused: moving
it to another base checks out only the paths that differ between the two
trees, and after every use it is cleaned back to its base (tracked files
restored, untracked and ignored files removed), so nothing a patch or a
check left behind can leak into the next validation.

A slot is held with an exclusive flock for as long as it is in use, so any
number of processes (the daemon's workers, `errauto apply`) can share one
pool. Changing git's list of worktrees (`worktree add`, `remove`, `prune`)
takes a second flock for the whole pool: `git worktree prune` deletes an
empty `.git/worktrees` while another `worktree add` is filling it, and that
add then fails. The user's own checkout, index and HEAD are never touched:
a linked worktree has its own HEAD and index.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy, FileStatus

from errauto_daemon import git, paths
from errauto_daemon.locks import FileLock
from errauto_daemon.patchapply import MODE_TREE, Overlay
from errauto_daemon.patchfile import MODE_EXEC, MODE_GITLINK, MODE_LINK
from errauto_daemon.repo import common_dir, repo_root
from errauto_daemon.sandbox import View

STALE_AFTER = 14 * 24 * 3600  # an idle slot is removed after this long
_STATE = "state.json"

_TRACKED_DIRTY = (FileStatus.WT_MODIFIED | FileStatus.WT_DELETED | FileStatus.WT_TYPECHANGE
                  | FileStatus.WT_RENAMED | FileStatus.WT_UNREADABLE)
_INDEX_DIRTY = (FileStatus.INDEX_NEW | FileStatus.INDEX_MODIFIED | FileStatus.INDEX_DELETED
                | FileStatus.INDEX_RENAMED | FileStatus.INDEX_TYPECHANGE)
_UNTRACKED = FileStatus.WT_NEW | FileStatus.IGNORED | FileStatus.CONFLICTED


class Slot:
    def __init__(self, pool: Pool, number: int) -> None:
        self.pool = pool
        self.number = number
        self.dir = pool.dir / f"slot-{number}"
        self.path = self.dir / f"errauto-{number}"
        self.lock_path = pool.dir / f"slot-{number}.lock"
        self._lock = FileLock(self.lock_path)

    # -- locking -------------------------------------------------------------

    def try_lock(self, blocking: bool = False) -> bool:
        if not self._lock.acquire(blocking=blocking):
            return False
        os.utime(self.lock_path)
        return True

    def unlock(self) -> None:
        self._lock.release()

    # -- state -----------------------------------------------------------------

    def _read_state(self) -> dict[str, object]:
        try:
            value = json.loads((self.dir / _STATE).read_text())
            return value if isinstance(value, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_state(self, **state: object) -> None:
        tmp = self.dir / (_STATE + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.dir / _STATE)

    @property
    def repo(self) -> pygit2.Repository:
        # Kept open across uses: a fresh Repository pays for loading pack
        # indexes and caches again (~10 ms on a 30,000-file repository).
        key = str(self.path)
        cached = self.pool.repos.get(key)
        if cached is None:
            cached = self.pool.repos[key] = pygit2.Repository(key)
        return cached

    def _gitdir(self) -> Path | None:
        """The slot's private git dir (`.git/worktrees/errauto-N` of the user's repository)."""
        dotgit = self.path / ".git"
        if not dotgit.is_file():
            return None
        try:
            return Path(dotgit.read_text().split("gitdir:", 1)[1].strip())
        except (OSError, IndexError):
            return None

    def _healthy(self) -> bool:
        gitdir = self._gitdir()
        return (gitdir is not None and gitdir.is_dir()
                and str(gitdir.resolve()).startswith(self.pool.common_dir))

    def _break_stale_locks(self) -> None:
        # We hold the slot's flock, so nobody else can be writing its index
        # or HEAD: a lock file there was left by a process that was killed.
        gitdir = self._gitdir()
        if gitdir is None:
            return
        for name in ("index.lock", "HEAD.lock"):
            (gitdir / name).unlink(missing_ok=True)

    def _create(self, base: pygit2.Commit) -> None:
        if self.dir.exists():
            _rmtree(self.dir)
        with self.pool.registry():
            # A slot whose directory vanished is still registered: forget it first.
            git.run(("worktree", "prune"), self.pool.common_dir)
            self.dir.mkdir(parents=True)
            git.run(("worktree", "add", "--detach", "--no-checkout", str(self.path), str(base.id)),
                    self.pool.common_dir)
        self.pool.repos.pop(str(self.path), None)
        _checkout(self.repo, self.repo[base.tree_id], None)
        self.repo.set_head(base.id)
        self._write_state(base=str(base.id), clean=True)

    # -- use ---------------------------------------------------------------------

    def prepare(self, base: pygit2.Commit) -> None:
        """Make the worktree hold exactly `base`, touching only what differs."""
        state = self._read_state()
        if not self._healthy() or "base" not in state:
            self._create(base)
            return
        if not state.get("clean"):
            self._break_stale_locks()
            self.clean()
        current = str(state["base"])
        if current != str(base.id):
            repo = self.repo
            try:
                old_tree = repo[current].peel(pygit2.Tree)
                assert isinstance(old_tree, pygit2.Tree)
            except (KeyError, ValueError):
                self._create(base)  # the old base was garbage-collected
                return
            new_tree = repo[base.tree_id]
            assert isinstance(new_tree, pygit2.Tree)
            diff = old_tree.diff_to_tree(new_tree)
            changed = sorted({p for d in diff.deltas for p in (d.old_file.path, d.new_file.path)})
            self._write_state(base=current, clean=False)
            if changed:
                _checkout(repo, new_tree, changed)
            repo.set_head(base.id)
            self._write_state(base=str(base.id), clean=True)

    def write(self, overlay: Overlay) -> list[str]:
        """Write the overlay's changes (the patch) into the worktree's files."""
        state = self._read_state()
        self._write_state(base=state.get("base"), clean=False)
        root = self.path
        written = []
        for path, value in sorted(overlay.changes.items(), key=lambda kv: kv[1] is not None):
            target = root / path
            _refuse_symlinked_parents(root, path)
            if value is None:
                if target.is_symlink() or target.is_file():
                    target.unlink()
                    _prune_empty_dirs(target.parent, root)
                written.append(path)
                continue
            mode, data = value
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                _rmtree(target)
            if mode == MODE_LINK:
                os.symlink(data, target)
            elif mode == MODE_GITLINK:
                target.mkdir()
            elif mode == MODE_TREE:
                continue
            else:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                fd = os.open(target, flags, 0o755 if mode == MODE_EXEC else 0o644)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
            written.append(path)
        return written

    def clean(self) -> None:
        """Put the worktree back to exactly its base: the state every use starts from."""
        repo = self.repo
        head_tree = repo.head.peel(pygit2.Commit).tree
        status = repo.status(untracked_files="normal", ignored=True)
        if any(flags & _INDEX_DIRTY for flags in status.values()):
            # A check staged something: rebuild the index from HEAD, look again.
            repo.index.read_tree(head_tree)
            repo.index.write()
            status = repo.status(untracked_files="normal", ignored=True)
        restore: list[str] = []
        for path, flags in status.items():
            if flags & _UNTRACKED and not flags & _TRACKED_DIRTY:
                full = self.path / path.rstrip("/")
                if full.is_symlink() or full.is_file():
                    full.unlink()
                elif full.is_dir():
                    _rmtree(full)
            else:
                restore.append(path.rstrip("/"))
        if restore:
            for path in restore:
                full = self.path / path
                if full.is_dir() and not full.is_symlink():
                    _rmtree(full)  # a directory where HEAD has a file
            _checkout(repo, head_tree, restore)
        state = self._read_state()
        self._write_state(base=state.get("base"), clean=True)

    def view(self) -> View:
        """What a check running in this slot may see: its worktree, read-only the
        objects and git dir it reads, and not the rest of the user's git dir nor
        errauto's state and cache (other slots, the database, stored patches)."""
        gitdir = self._gitdir()
        objects = Path(self.pool.common_dir) / "objects"
        readable = (*_object_dirs(objects), *((gitdir,) if gitdir is not None else ()))
        return View(writable=(self.path,), readable=readable,
                    hidden=(Path(self.pool.common_dir), paths.state_dir(), paths.cache_dir()))

    def remove(self) -> None:
        with self.pool.registry():
            git.run(("worktree", "remove", "--force", str(self.path)), self.pool.common_dir, check=False)
            _rmtree(self.dir)
            git.run(("worktree", "prune"), self.pool.common_dir, check=False)


class Pool:
    """The worktree slots of one repository."""

    def __init__(self, repo: pygit2.Repository, size: int = 8,
                 repos: dict[str, pygit2.Repository] | None = None) -> None:
        """`repos` caches open slot repositories; share it within one thread only."""
        self.repos = repos if repos is not None else {}
        self.common_dir = common_dir(repo)
        key = hashlib.sha256(self.common_dir.encode()).hexdigest()[:12]
        name = Path(repo_root(repo)).name or "repo"
        self.dir = paths.worktrees_dir() / f"{name}-{key}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.size = max(1, size)

    @contextmanager
    def registry(self) -> Iterator[None]:
        """Exclusive use of git's worktree list, across threads and processes.

        Not reentrant: a second `registry()` in the same thread waits forever.
        """
        with FileLock(self.dir / "worktrees.lock"):
            yield

    @contextmanager
    def acquire(self, base: pygit2.Commit) -> Iterator[Slot]:
        """A slot holding `base`, exclusively ours until the block ends."""
        slot = None
        for number in range(self.size):
            candidate = Slot(self, number)
            if candidate.try_lock():
                slot = candidate
                break
        if slot is None:
            slot = Slot(self, int(time.monotonic() * 1000) % self.size)
            slot.try_lock(blocking=True)
        try:
            slot.prepare(base)
            yield slot
        finally:
            slot.unlock()

    def prune(self, stale_after: float = STALE_AFTER) -> list[int]:
        """Remove slots idle for longer than `stale_after` seconds."""
        removed = []
        now = time.time()
        for lock in self.dir.glob("slot-*.lock"):
            try:
                number = int(lock.stem.split("-", 1)[1])
                idle = now - lock.stat().st_mtime
            except (ValueError, OSError):
                continue
            if idle < stale_after:
                continue
            slot = Slot(self, number)
            if not slot.try_lock():
                continue
            try:
                slot.remove()
                removed.append(number)
            finally:
                slot.unlock()
                lock.unlink(missing_ok=True)
        with self.registry():
            git.run(("worktree", "prune"), self.common_dir, check=False)
        return removed


def _object_dirs(objects: Path) -> list[Path]:
    """`objects` and the object directories it borrows (`info/alternates`, followed)."""
    out: list[Path] = []
    todo = [objects]
    while todo and len(out) < 16:
        directory = todo.pop(0).resolve()
        if directory in out or not directory.is_dir():
            continue
        out.append(directory)
        try:
            lines = (directory / "info" / "alternates").read_text().splitlines()
        except OSError:
            continue
        todo += [directory / line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return out


def _checkout(repo: pygit2.Repository, tree: pygit2.Object, paths: list[str] | None) -> None:
    """Force `paths` (all when None) of the worktree and its index to `tree`."""
    if paths is None:
        repo.checkout_tree(tree, strategy=CheckoutStrategy.FORCE)  # type: ignore[no-untyped-call]
    else:
        repo.checkout_tree(  # type: ignore[no-untyped-call]
            tree, paths=paths, strategy=CheckoutStrategy.FORCE | CheckoutStrategy.DISABLE_PATHSPEC_MATCH)


def _refuse_symlinked_parents(root: Path, path: str) -> None:
    # The guard already refused paths beyond symlinks; this is the last line
    # of defence should the worktree hold one it did not expect.
    current = root
    for part in path.split("/")[:-1]:
        current = current / part
        if current.is_symlink():
            raise RuntimeError(f"refusing to write {path}: {current} is a symlink")


def _prune_empty_dirs(directory: Path, root: Path) -> None:
    while directory != root and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def _rmtree(path: Path) -> None:
    def onerror(func: object, name: str, exc: object) -> None:
        # Checks may leave read-only files or directories behind.
        try:
            os.chmod(os.path.dirname(name), stat.S_IRWXU)
            os.chmod(name, stat.S_IRWXU)
        except OSError:
            pass
        if os.path.isdir(name) and not os.path.islink(name):
            shutil.rmtree(name, ignore_errors=True)
        else:
            try:
                os.unlink(name)
            except OSError:
                pass

    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=onerror)
