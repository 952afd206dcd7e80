"""Reading a configuration: from the target's committed tree (pygit2 or the git
command line), else the working tree, else the defaults."""
from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from errauto_daemon import bwrap, git
from errauto_daemon.config.keys import validated
from errauto_daemon.config.model import CONFIG_FILE, DEFAULT_SECRET_ENV, PYPROJECT, Config
from errauto_daemon.errors import ConfigError, FatalError

if TYPE_CHECKING:
    import pygit2


# --------------------------------------------------------------------------
# loading

class _Source(Protocol):
    """Where configuration is read from: a repository, via pygit2 or the git CLI."""

    where: str
    workdir: Path | None
    compare_working_tree: bool  # warn when the working tree's config differs from the committed one

    def head_branch(self) -> str | None: ...
    def has_branch(self, branch: str) -> bool: ...
    def read(self, branch: str, name: str) -> bytes | None: ...


class _Pygit2Source:
    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.where = str(repo.workdir or repo.path).rstrip("/")
        self.workdir = Path(repo.workdir) if repo.workdir else None
        self.compare_working_tree = True

    def head_branch(self) -> str | None:
        return head_branch(self.repo)

    def has_branch(self, branch: str) -> bool:
        return self.repo.references.get("refs/heads/" + branch) is not None

    def read(self, branch: str, name: str) -> bytes | None:
        import pygit2

        ref = self.repo.references.get("refs/heads/" + branch)
        if ref is None:
            return None
        try:
            blob = ref.peel(pygit2.Commit).tree[name]
        except KeyError:
            return None
        return blob.data if isinstance(blob, pygit2.Blob) else None


class _GitSource:
    """The git command line only: for hooks, which must start fast (no pygit2).

    Everything one branch can tell (does it exist, its config files) is read
    in one `git cat-file --batch`.
    """

    def __init__(self, gitdir: Path, workdir: Path | None) -> None:
        self.cwd = gitdir
        self.where = str(workdir or gitdir)
        self.workdir = workdir  # None (a server's hook): the committed tree or nothing
        self.compare_working_tree = False  # hooks: no cost beyond the committed tree
        self._branches: dict[str, dict[str, bytes | None]] = {}

    def head_branch(self) -> str | None:
        try:
            text = (self.cwd / "HEAD").read_text().strip()
        except OSError:
            text = ""
        if not text.startswith("ref: "):
            proc = git.run(("symbolic-ref", "-q", "HEAD"), self.cwd, check=False)
            text = "ref: " + proc.stdout.decode().strip()
        name = text[len("ref: "):]
        return name[len("refs/heads/"):] if name.startswith("refs/heads/") else None

    def _branch(self, branch: str) -> dict[str, bytes | None]:
        if branch not in self._branches:
            specs = [f"refs/heads/{branch}^{{commit}}"] + [f"refs/heads/{branch}:{n}" for n in (CONFIG_FILE, PYPROJECT)]
            try:
                found = git.read_objects(self.cwd, specs)
            except git.GitError as exc:
                raise FatalError(str(exc)) from None  # not a repository (any more)
            self._branches[branch] = {"": found[specs[0]], CONFIG_FILE: found[specs[1]], PYPROJECT: found[specs[2]]}
        return self._branches[branch]

    def has_branch(self, branch: str) -> bool:
        return self._branch(branch)[""] is not None

    def read(self, branch: str, name: str) -> bytes | None:
        return self._branch(branch).get(name)


def head_branch(repo: pygit2.Repository) -> str | None:
    """The branch HEAD names, even when it has no commits yet."""
    import pygit2

    try:
        ref = repo.references.get("HEAD")
    except pygit2.GitError:
        return None
    if ref is None or not isinstance(ref.target, str):
        return None
    name = ref.target
    return name[len("refs/heads/"):] if name.startswith("refs/heads/") else None


def load(repo: pygit2.Repository, target: str | None = None) -> Config:
    """The configuration that judges patches for `target` in `repo`; one whose
    checks would need a sandbox this machine cannot give is a configuration error."""
    config = _load(_Pygit2Source(repo), target)
    bwrap.require(config.sandbox, bool(config.checks), config.source)
    return config


def load_with_git(gitdir: str | Path, target: str | None = None, *, workdir: Path | None = None) -> Config:
    """As `load`, reading the repository with the git command line (no pygit2).

    `workdir`: the work tree whose config files are the fallback, if any.
    """
    return _load(_GitSource(Path(gitdir), workdir), target)


def from_text(text: str, where: str) -> Config:
    """A configuration not read from a repository (`errauto init`'s draft), checked as any other."""
    return validated(_extract(text.encode("utf-8"), CONFIG_FILE, where) or {}, where)


def _load(source: _Source, target: str | None) -> Config:
    named_in: str | None = None  # the configuration that named the target, if one did
    if target is None:
        # Which branch is the target is itself configuration: look at the
        # branch HEAD names, then take every other rule from the target.
        home = source.head_branch() or "main"
        raw, where = _read_raw(source, home)
        value = raw.get("target", home) if raw is not None else home
        target = value if isinstance(value, str) else home
        named_in = where if raw is not None and "target" in raw else None
    target = target.removeprefix("refs/heads/")
    if not source.has_branch(target):
        if named_in is not None:
            raise ConfigError(f"config error in {named_in}: target names the branch {target!r}, "
                              f"which does not exist in {source.where}")
        raise FatalError(f"target branch {target!r} does not exist in {source.where}")
    raw, where = _read_raw(source, target)
    if source.compare_working_tree and source.workdir is not None and raw is not None \
            and where.endswith(f" on {target}"):
        _warn_if_working_tree_differs(source.workdir, raw, where)
    values = dict(raw or {})
    values.setdefault("target", target)
    if values["target"] != target and isinstance(values["target"], str):
        # The target's own config names another target: the tree we read is
        # authoritative for rules but cannot redirect itself.
        values["target"] = target
    config = validated(values, where)
    _remember_secrets(config.secrets())
    return config


# The secret names of every configuration this process loaded: whatever read
# one may log, so `redact` hides their values too. Kept here, not pushed into
# `redact`, so that loading a configuration depends on nothing downstream.
_secret_names: set[str] = set()
_secret_names_lock = threading.Lock()


def _remember_secrets(names: Iterable[str]) -> None:
    with _secret_names_lock:
        _secret_names.update(names)


def secret_names() -> tuple[str, ...]:
    """The names of the environment variables that hold secrets, as far as this process knows:
    the defaults and those of every configuration it loaded."""
    with _secret_names_lock:
        loaded = sorted(_secret_names)
    return tuple(dict.fromkeys((*DEFAULT_SECRET_ENV, *loaded)))


def _read_raw(source: _Source, branch: str) -> tuple[dict[str, Any] | None, str]:
    for name in (CONFIG_FILE, PYPROJECT):
        data = source.read(branch, name)
        if data is not None:
            found = _extract(data, name, f"{name} on {branch}")
            if found is not None:
                return found, f"{name} on {branch}"
    if source.workdir is not None:
        for name in (CONFIG_FILE, PYPROJECT):
            path = source.workdir / name
            if path.is_file():
                found = _extract(path.read_bytes(), name, f"{name} in the working tree")
                if found is not None:
                    return found, f"{name} in the working tree"
    return None, "defaults"


_warned: set[tuple[str, str]] = set()


def _warn_if_working_tree_differs(workdir: Path, committed: dict[str, Any], where: str) -> None:
    name, working = _working_config(workdir)
    if working == committed:
        return
    key = (str(workdir), repr(working))
    if key in _warned:
        return
    _warned.add(key)
    used = where.split(" on ", 1)
    if name is None:
        message = (f"the working tree of {workdir} has no errauto configuration; "
                   f"errauto uses the committed {used[0]} on {used[1]}")
    else:
        message = (f"{name} in the working tree of {workdir} differs from the committed "
                   f"{used[0]} on {used[1]}, which errauto uses; commit it for the change to apply")
    import logging  # here: the status hook imports this module, and reads no configuration

    logger = logging.getLogger("errauto.config")
    if logger.hasHandlers():
        logger.warning(message)
    else:
        print(f"errauto: warning: {message}", file=sys.stderr)


def _working_config(workdir: Path) -> tuple[str | None, dict[str, Any] | str | None]:
    """The configuration the working tree would give, and its file; unreadable: its error."""
    for name in (CONFIG_FILE, PYPROJECT):
        path = workdir / name
        try:
            data = path.read_bytes()
        except OSError:
            continue
        try:
            found = _extract(data, name, name)
        except ConfigError as exc:
            return name, str(exc)
        if found is not None:
            return name, found
    return None, None


def _extract(data: bytes, name: str, where: str) -> dict[str, Any] | None:
    # Imported here: the status hook imports this module, and reads no configuration.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config error in {where}: invalid TOML: {exc}") from None
    tool = doc.get("tool", {})
    section = tool.get("errauto") if isinstance(tool, dict) else None
    if name == PYPROJECT:
        if section is None:
            return None
        if not isinstance(section, dict):
            raise ConfigError(f"config error in {where}: tool.errauto must be a table")
        return dict(section)
    if section is not None and set(doc) == {"tool"}:
        doc = section  # .errauto.toml written with the pyproject-style header
    if not isinstance(doc, dict):
        raise ConfigError(f"config error in {where}: expected a table")
    return dict(doc)


