"""A pool of slots in which patches are proven.

Each slot is a repository of its own under the user cache dir: a worktree
(`errauto-N`) and a git dir owned by errauto beside it (`git`), which
borrows the user's objects read-only (`objects/info/alternates`) and has no
refs but a detached HEAD. Nothing in it is shared with the user's
repository: a check cannot move the user's refs, plant a hook or a config
key there, and with the user's git dir hidden from it, `git status` in the
worktree still works. `git worktree list` does not show the slots. A slot
is created once (the only full checkout it ever does) and then reused:
moving it to another base checks out only the paths that differ.

After every use the slot is put back to its base, and that is proven rather
than taken from `git status`, since the check that just ran may have worked
on the index or the git dir as well as on the files (`Slot.clean`):

1. the git dir is rewritten but for the index (HEAD, config, alternates; no
   hook, no other key, no ref or object of its own), and so is the
   worktree's `.git` file;
2. the index must be byte for byte the copy errauto keeps of the one it last
   wrote (outside anything a check sees); if not, the copy replaces it. Its
   stat data is then errauto's own, and a file a check changed, chmodded or
   replaced has a newer ctime, which nobody can set back (git compares
   ctimes to the second, so the files errauto wrote in the second it last
   sealed the slot are compared in nanoseconds as well);
3. one look, in parallel processes, finds directories a check closed and
   `.git` entries below the root (git never lists those), untracked and
   ignored files, tracked files whose stat differs from the index (`git
   diff-files`, which does not refresh the index), and whether the index's
   tree is the base's;
4. what it found is opened, removed, or written again from the object store,
   and checked path by path (a directory that was closed means one more
   look); a slot that cannot be proven clean is removed and created again.

Before a use the git dir and the index are put back every time; the
worktree is looked at again only if the last use did not end in a proven
clean (the process died, or the slot was never cleaned).

A slot is held with an exclusive flock for as long as it is in use, so any
number of processes (the daemon's workers, `errauto apply`) can share one
pool. Slots made by earlier versions were linked worktrees of the user's
repository; they are removed from git's list of worktrees (under a flock for
the whole pool: `git worktree prune` deletes an empty `.git/worktrees`
while another `worktree` command is filling it) and made again.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy, RepositoryOpenFlag

from errauto_daemon import git, paths
from errauto_daemon.locks import FileLock
from errauto_daemon.patchapply import MODE_TREE, Overlay
from errauto_daemon.patchfile import MODE_EXEC, MODE_GITLINK, MODE_LINK
from errauto_daemon.repo import common_dir, repo_root
from errauto_daemon.sandbox import View

STALE_AFTER = 14 * 24 * 3600  # an idle slot is removed after this long
_STATE = "state.json"
_LAYOUT = 2  # 1: a linked worktree of the user's repository; 2: a repository of its own
_TRUSTED_INDEX = "index.trusted"
_ROUNDS = 3  # looks (each after the fixes the last one called for) before a slot is made again

# Settings git reads from the slot's own config, so that the user's global
# configuration cannot change what errauto sees of the worktree: no file
# system monitor or untracked cache answering for the files, stat data
# compared in full (ctime included), modes and symlinks as they are.
_CORE = {
    "repositoryformatversion": "0",
    "bare": "false",
    "symlinks": "true",
    "ignorecase": "false",
    "trustctime": "true",
    "checkStat": "default",
    "fsmonitor": "false",
    "untrackedCache": "false",
    "splitIndex": "false",
    "sparseCheckout": "false",
    "logAllRefUpdates": "false",
}
# The same for errauto's own git commands in a slot, whatever the config holds.
_SAFE = ("-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false", "-c", "core.splitIndex=false",
         "-c", "core.sparseCheckout=false", "-c", "core.trustctime=true", "-c", "core.checkStat=default")


class Slot:
    def __init__(self, pool: Pool, number: int) -> None:
        self.pool = pool
        self.number = number
        self.dir = pool.dir / f"slot-{number}"
        self.path = self.dir / f"errauto-{number}"
        self.gitdir = self.dir / "git"
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

    def _write_state(self, state: dict[str, object]) -> None:
        tmp = self.dir / (_STATE + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.dir / _STATE)

    def _mark(self, clean: bool) -> None:
        self._write_state({**self._read_state(), "clean": clean})

    @property
    def repo(self) -> pygit2.Repository:
        """The slot's repository, opened by its git dir (never through the
        worktree's `.git` file, which a check can rewrite)."""
        # Kept open across uses: a fresh Repository pays for loading pack
        # indexes and caches again (~10 ms on a 30,000-file repository).
        key = str(self.gitdir)
        cached = self.pool.repos.get(key)
        if cached is None:
            cached = self.pool.repos[key] = pygit2.Repository(key, RepositoryOpenFlag.NO_SEARCH)
        return cached

    def _forget_repo(self) -> None:
        self.pool.repos.pop(str(self.gitdir), None)

    def _run(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return git.run(("--git-dir", str(self.gitdir), "--work-tree", str(self.path), *_SAFE, *args),
                       self.path, input=stdin, check=False)

    def _git(self, *args: str, stdin: bytes | None = None) -> bytes:
        proc = self._run(*args, stdin=stdin)
        if proc.returncode != 0:
            raise git.GitError(f"git {args[0]} in slot {self.number} failed: {git.last_line(proc)}")
        return proc.stdout

    # -- the git dir -------------------------------------------------------------

    def _admin_files(self, head: str, filemode: bool) -> dict[str, str]:
        """Every file of the slot's git dir but the index, as errauto writes it."""
        core = {**_CORE, "filemode": "true" if filemode else "false", "worktree": str(self.path)}
        config = "[core]\n" + "".join(f"\t{key} = {value}\n" for key, value in core.items())
        config += "[gc]\n\tauto = 0\n"
        objects = Path(self.pool.common_dir) / "objects"
        files = {"HEAD": head + "\n", "config": config, "objects/info/alternates": f"{objects}\n"}
        shallow = _read_regular(Path(self.pool.common_dir) / "shallow")
        if shallow is not None:  # a shallow clone: history stops where the user's does
            files["shallow"] = shallow
        return files

    _ADMIN_DIRS = frozenset(("objects", "objects/info", "objects/pack", "refs", "refs/heads", "refs/tags"))

    def _reset_gitdir(self, head: str, filemode: bool) -> bool:
        """Make the git dir hold exactly errauto's files (and the index), and the
        worktree's `.git` file point at it. True if anything had to change."""
        files = self._admin_files(head, filemode)
        changed = not _holds_exactly(self.gitdir, files, self._ADMIN_DIRS, keep=("index",))
        if changed:
            for entry in _entries(self.gitdir):
                if entry.name != "index":
                    _remove(Path(entry.path))
            for directory in sorted(self._ADMIN_DIRS):
                (self.gitdir / directory).mkdir(exist_ok=True)
            for name, text in files.items():
                _write_file(self.gitdir / name, text)
            self._forget_repo()
        dotgit = self.path / ".git"
        if _read_regular(dotgit) != f"gitdir: {self.gitdir}\n":
            _remove(dotgit)
            _write_file(dotgit, f"gitdir: {self.gitdir}\n")
            changed = True
        return changed

    # -- the index -----------------------------------------------------------------

    def _restore_index(self, digest: str) -> bool:
        """Put errauto's own copy of the index in place if the index is not
        exactly it. False if errauto has no sound copy."""
        index = self.gitdir / "index"
        if _digest(index) == digest:
            return True
        trusted = self.dir / _TRUSTED_INDEX
        if _digest(trusted) != digest:
            return False
        _remove(index)
        tmp = self.gitdir / "index.errauto"
        shutil.copy2(trusted, tmp)  # the mtime too: git tells racily clean entries by it
        os.replace(tmp, index)
        self._forget_repo()
        return True

    def _seal(self, base: str, filemode: bool, written: list[str] | None, *, in_use: bool = False) -> None:
        """Record the proven state: the base, a copy of the index errauto wrote,
        and the files it wrote within the current second (`written`: the paths
        it wrote since the last seal, None for all)."""
        index = self.gitdir / "index"
        digest = _digest(index)
        trusted = self.dir / _TRUSTED_INDEX
        if digest != self._read_state().get("index") or not trusted.is_file():
            tmp = self.dir / (_TRUSTED_INDEX + ".tmp")
            shutil.copy2(index, tmp)
            os.replace(tmp, trusted)
        if written is None:
            written = [str(e.path) for e in self.repo.index]
            fresh: dict[str, object] = {}
        else:
            fresh = self._fresh()
        self._write_state({"layout": _LAYOUT, "base": base, "clean": not in_use, "index": digest,
                           "filemode": filemode, "fresh": _recent(self.path, fresh, written)})

    def _fresh(self) -> dict[str, object]:
        fresh = self._read_state().get("fresh")
        return fresh if isinstance(fresh, dict) else {}

    def _touched_fresh(self) -> list[str]:
        """Files errauto wrote in the second it last sealed whose stat changed
        since: git compares ctimes to the second, so a change within that same
        second (a chmod) would pass its comparison."""
        touched = []
        for path, recorded in self._fresh().items():
            try:
                st = os.lstat(self.path / path)
            except OSError:
                touched.append(path)
                continue
            if recorded != [st.st_ctime_ns, st.st_mode, st.st_ino]:
                touched.append(path)
        return touched

    # -- creating ------------------------------------------------------------------

    def _create(self, base: pygit2.Commit, *, in_use: bool = False) -> None:
        self.pool.forget_worktree(self.path)
        self._forget_repo()
        if self.dir.exists() or self.dir.is_symlink():
            _rmtree(self.dir)
        self.path.mkdir(parents=True)
        self.gitdir.mkdir()
        filemode = _has_filemode(self.dir)
        self._reset_gitdir(str(base.id), filemode)
        _checkout(self.repo, self.repo[base.tree_id], None)
        self._seal(str(base.id), filemode, None, in_use=in_use)

    # -- use ---------------------------------------------------------------------

    def prepare(self, base: pygit2.Commit) -> None:
        """Make the worktree hold exactly `base`, touching only what differs.

        From here until `clean` proves it clean again the slot counts as used:
        a process that dies in between leaves it to be scanned before its next use."""
        if self._prepare(base):
            self._mark(clean=False)

    def _prepare(self, base: pygit2.Commit) -> bool:
        """Whether the slot is still to be marked in use (its state is written
        as few times as can be: each write is a rename, ~2 ms on some disks)."""
        state = self._read_state()
        current = state.get("base")
        if state.get("layout") != _LAYOUT or not isinstance(current, str) or not self.gitdir.is_dir():
            self._create(base, in_use=True)
            return False
        # The cheap half of the proof every time; the scan of the worktree only
        # if the last use did not end in a proven clean.
        if not self._prove(current, scan=not state.get("clean")):
            self._create(base, in_use=True)
            return False
        if current != str(base.id):
            repo = self.repo
            try:
                old_tree = repo[current].peel(pygit2.Tree)
                assert isinstance(old_tree, pygit2.Tree)
            except (KeyError, ValueError):
                self._create(base, in_use=True)  # the old base was garbage-collected
                return False
            new_tree = repo[base.tree_id]
            assert isinstance(new_tree, pygit2.Tree)
            diff = old_tree.diff_to_tree(new_tree)
            changed = sorted({p for d in diff.deltas for p in (d.old_file.path, d.new_file.path)})
            self._mark(clean=False)
            if changed:
                _checkout(repo, new_tree, changed)
            _write_file(self.gitdir / "HEAD", f"{base.id}\n")
            self._seal(str(base.id), bool(state.get("filemode", True)), changed, in_use=True)
            return False
        return True

    def write(self, overlay: Overlay) -> list[str]:
        """Write the overlay's changes (the patch) into the worktree's files
        (the slot counts as used since `prepare`)."""
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
        """Put the slot back to exactly its base, proven (see the module's
        docstring); a slot that cannot be proven clean is created again."""
        state = self._read_state()
        base = state.get("base")
        if state.get("layout") == _LAYOUT and isinstance(base, str) and self._prove(base, scan=True):
            return
        commit = self.pool.source[str(base)] if isinstance(base, str) else None
        if not isinstance(commit, pygit2.Commit):
            raise RuntimeError(f"slot {self.number}: no base to clean back to")
        self._create(commit)

    def _prove(self, base: str, *, scan: bool) -> bool:
        """Whether the slot now holds exactly `base`, after putting it back.
        Without `scan`, only the git dir and the index are put back."""
        state = self._read_state()
        filemode = bool(state.get("filemode", True))
        digest = state.get("index")
        try:
            if self.path.is_symlink() or not self.path.is_dir():
                return False
            if scan:
                self._mark(clean=False)
                _own_fully(self.path)
            self._reset_gitdir(base, filemode)
            if not isinstance(digest, str) or not self._restore_index(digest):
                return False
            if not scan:
                return True
            written = self._scan(base)
        except (OSError, git.GitError, pygit2.GitError, KeyError, ValueError):
            return False  # whatever stands in the way, a slot made again is clean
        if written is None:
            return False
        self._seal(base, filemode, written)
        return True

    def _scan(self, base: str) -> list[str] | None:
        """Put the worktree back to the index errauto trusts; the files it wrote
        again, or None if that could not be proven."""
        written: list[str] = []
        for _ in range(_ROUNDS):
            odd, extra, touched, same_tree = self._look(base)
            if not same_tree:
                return None
            touched = sorted({*touched, *self._touched_fresh()})
            if not odd and not extra and not touched:
                return written
            for name in odd:  # directories to open again, `.git` entries below the root
                if os.path.basename(name) == ".git":
                    _remove(self.path / name)
                else:
                    _own_fully(self.path / name)
            for name in (*extra, *touched):
                _remove_below(self.path, name)
            if touched:  # all removed above, so libgit2 writes each (and keeps its index in memory)
                _checkout(self.repo, self.repo[base].peel(pygit2.Tree), touched)
                written += touched
                self._write_state({**self._read_state(), "fresh": _recent(self.path, self._fresh(), touched)})
            if odd:
                continue  # what an unreadable directory hid was not in this look: look again
            # Everything was in sight and only these paths changed: they are the proof.
            if any(os.path.lexists(self.path / name) for name in extra):
                return None
            if touched and (len(touched) > 1000 or self._git(
                    "--literal-pathspecs", "diff-files", "-z", "--name-only", "--", *touched).strip(b"\0")):
                continue
            return written
        return None

    def _look(self, base: str) -> tuple[list[str], list[str], list[str], bool]:
        """One look at the worktree, in parallel processes: directories a check
        closed and `.git` entries below the root (`find`), untracked and ignored
        files, tracked files whose stat differs from the index; and whether the
        index's tree is the base's."""
        git_args = ("git", "--git-dir", str(self.gitdir), "--work-tree", str(self.path), *_SAFE)
        find = ("find", ".", "-mindepth", "1", "(", "-path", "./.git", "-prune", ")",
                "-o", "(", "-name", ".git", "-print0", "-prune", ")",
                "-o", "(", "-type", "d", "!", "-perm", "-0700", "-print0", ")")
        procs = [subprocess.Popen(cmd, cwd=self.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=git.scrubbed_env())
                 for cmd in (find,
                             (*git_args, "ls-files", "-z", "--others", "--directory"),
                             (*git_args, "diff-files", "-z", "--name-only"))]
        try:
            # Meanwhile, in this process: the index (re-read if git wrote it) against the base's tree.
            index = self.repo.index
            index.read(False)
            same_tree = len(index.diff_to_tree(self.repo[base].peel(pygit2.Tree))) == 0
        finally:
            outs = [proc.communicate()[0] for proc in procs]
        for proc, what in zip(procs[1:3], ("ls-files", "diff-files"), strict=True):
            if proc.returncode != 0:
                raise git.GitError(f"git {what} in slot {self.number} failed (exit code {proc.returncode})")

        def names(out: bytes) -> list[str]:
            return [os.fsdecode(p.rstrip(b"/")) for p in out.split(b"\0") if p]

        odd = [name.removeprefix("./") for name in names(outs[0])]
        return odd, names(outs[1]), names(outs[2]), same_tree

    def view(self) -> View:
        """What a check running in this slot may see: its worktree, read-only
        its own git dir and the objects that borrows, and not the user's git
        dir nor errauto's state and cache (other slots, the database, stored
        patches), nor the socket of a database server errauto uses."""
        from errauto_daemon.store import where

        objects = Path(self.pool.common_dir) / "objects"
        return View(writable=(self.path,), readable=(self.gitdir, *_object_dirs(objects)),
                    hidden=(Path(self.pool.common_dir), paths.state_dir(), paths.cache_dir(),
                            *where.socket_dirs(where.configured())))

    def remove(self) -> None:
        self.pool.forget_worktree(self.path)
        self._forget_repo()
        _rmtree(self.dir)


class Pool:
    """The slots of one repository."""

    def __init__(self, repo: pygit2.Repository, size: int = 8,
                 repos: dict[str, pygit2.Repository] | None = None) -> None:
        """`repos` caches open slot repositories; share it within one thread only."""
        self.repos = repos if repos is not None else {}
        self.source = repo
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

    def _linked_slots(self) -> dict[Path, Path]:
        """Slots of earlier versions still in the user's list of worktrees:
        each worktree under this pool's directory, with its entry in that list."""
        found: dict[Path, Path] = {}
        for entry in _entries(Path(self.common_dir) / "worktrees"):
            dotgit = _read_regular(Path(entry.path) / "gitdir")
            if dotgit is None:
                continue
            worktree = Path(dotgit.strip()).parent
            if worktree.is_relative_to(self.dir):
                found[worktree] = Path(entry.path)
        return found

    def forget_worktree(self, path: Path) -> None:
        """Take the slot at `path`, if an earlier version made it a linked
        worktree, out of the user's list of worktrees and delete it. The
        caller holds the slot's lock."""
        if path not in self._linked_slots():
            return
        with self.registry():
            if path in self._linked_slots():
                git.run(("worktree", "remove", "--force", "--force", str(path)), self.common_dir, check=False)
                _rmtree(path)
                git.run(("worktree", "prune"), self.common_dir, check=False)

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
        for worktree in self._linked_slots():  # left by an earlier version
            try:
                number = int(worktree.parent.name.split("-", 1)[1])
            except (ValueError, IndexError):
                continue
            slot = Slot(self, number)
            if slot.path == worktree and slot.try_lock():
                try:
                    slot.remove()
                finally:
                    slot.unlock()
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


def _remove(path: Path) -> None:
    """`path`, whatever it is (nothing if it is not there)."""
    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(mode):
        _rmtree(path)
    else:
        path.unlink()


def _remove_below(root: Path, relative: str) -> None:
    """`root/relative`, unless a directory on the way there is not one (a
    symlink, a file): then there is nothing of the worktree's to remove."""
    current = root
    for part in relative.split("/")[:-1]:
        current = current / part
        try:
            if not stat.S_ISDIR(current.lstat().st_mode):
                return
        except OSError:
            return
    _remove(root / relative)


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


@contextmanager
def _regular(path: Path) -> Iterator[io.BufferedReader | None]:
    """A regular file opened for reading, never through a symlink; None if it is anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        yield None
        return
    with os.fdopen(fd, "rb") as fh:
        yield fh if stat.S_ISREG(os.fstat(fh.fileno()).st_mode) else None


def _read_regular(path: Path) -> str | None:
    """A regular file's text, never through a symlink; None if it is anything else."""
    with _regular(path) as fh:
        return None if fh is None else fh.read().decode("utf-8", "surrogateescape")


def _write_file(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".errauto")
    tmp.write_text(text)
    os.replace(tmp, path)


def _digest(path: Path) -> str | None:
    with _regular(path) as fh:
        return None if fh is None else hashlib.file_digest(fh, "sha256").hexdigest()


def _holds_exactly(directory: Path, files: dict[str, str], dirs: frozenset[str], keep: tuple[str, ...]) -> bool:
    """Whether `directory` holds just `files` (with that text), `dirs`, and `keep`."""
    seen_files: set[str] = set()
    seen_dirs: set[str] = set()
    for top, subdirs, names in os.walk(directory):
        relative = os.path.relpath(top, directory)
        prefix = "" if relative == "." else relative + "/"
        for name in subdirs:
            if os.path.islink(os.path.join(top, name)):
                return False
            seen_dirs.add(prefix + name)
        seen_files.update(prefix + name for name in names)
    if seen_dirs != dirs or not seen_files <= {*files, *keep} or not set(files) <= seen_files:
        return False
    return all(_read_regular(directory / name) == text for name, text in files.items())


def _has_filemode(directory: Path) -> bool:
    """Whether the file system keeps the executable bit (git's core.filemode)."""
    probe = directory / ".filemode-probe"
    probe.write_bytes(b"")
    try:
        probe.chmod(0o755)
        return bool(probe.stat().st_mode & stat.S_IXUSR)
    finally:
        probe.unlink()


def _own_fully(directory: Path) -> None:
    """Give the owner full access to `directory` again (a check may have taken it away)."""
    mode = os.lstat(directory).st_mode
    if stat.S_ISDIR(mode) and mode & stat.S_IRWXU != stat.S_IRWXU:  # the bits: root may access anything
        os.chmod(directory, stat.S_IRWXU | (mode & 0o077))


def _recent(root: Path, fresh: dict[str, object], written: list[str]) -> dict[str, object]:
    """`fresh` with `written` brought up to date, keeping only the files whose
    ctime is in the current second: [ctime_ns, mode, inode] of each."""
    now = time.time_ns() // 1_000_000_000
    out = dict(fresh)
    for path in written:
        try:
            st = os.lstat(root / path)
        except OSError:
            out.pop(path, None)
            continue
        out[path] = [st.st_ctime_ns, st.st_mode, st.st_ino]
    return {path: value for path, value in out.items()
            if isinstance(value, list) and value and value[0] // 1_000_000_000 >= now}
