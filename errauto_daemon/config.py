"""Load and validate a repository's errauto configuration.

The configuration is `.errauto.toml` at the repository root, or the
`[tool.errauto]` table of `pyproject.toml`. It is read from the target
branch's *committed* tree, so a patch can never change the rules it is
judged by; when the target has none, the working tree is used (so a fresh
`errauto init` works before it is committed), then the defaults. When the
working tree's configuration differs from the committed one in use, that is
said once per process (stderr, or the log where one is set up), so an edit
nobody committed does not silently fail to apply.

Every key is checked: an unknown key, a wrong type or an impossible value
fails with one line that names the key.
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from errauto_daemon import git
from errauto_daemon.alerts import ALERT_KINDS
from errauto_daemon.errors import ConfigError, FatalError
from errauto_daemon.limits import Limits

if TYPE_CHECKING:
    import pygit2

CONFIG_FILE = ".errauto.toml"
PYPROJECT = "pyproject.toml"

DEFAULT_WEIGHTS = {"tests": 0.40, "lint": 0.20, "typecheck": 0.15, "security": 0.15, "coverage": 0.10}
DEFAULT_PROTECTED = (
    ".github/**",
    ".pre-commit-config.yaml",
    "pyproject.toml",
    "**/conftest.py",
    ".errauto.toml",
)
DEFAULT_SECRET_ENV = ("GITHUB_TOKEN", "SLACK_WEBHOOK_URL")
GITHUB_API_URL = "https://api.github.com"
MERGE_METHODS = ("merge", "squash", "rebase")


@dataclass(frozen=True)
class CheckConfig:
    name: str
    command: tuple[str, ...]
    weight: float
    timeout: float = 600.0
    gate: bool = False  # must pass for a patch to auto-merge
    kind: str = "command"  # or "coverage": scored against the base's coverage
    report: str = "coverage.json"  # coverage: the JSON report the command writes
    tolerance: float = 5.0  # coverage: percentage points of drop that score 0
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GithubConfig:
    """`[github]`: where pull requests go. The token itself is never configured,
    only the name of the environment variable that holds it."""

    repo: str  # "owner/name"
    api_url: str = GITHUB_API_URL
    token_env: str = "GITHUB_TOKEN"
    remote: str = "origin"  # the git remote errauto/<id> branches are pushed to
    merge_method: str = "merge"
    labels: tuple[str, ...] = ("errauto",)
    merge_via_pr: bool = False  # the auto_merge route also goes through a PR, merged at once
    rate_limit_wait: float = 60.0  # longest wait for a rate limit to reset, per request
    write_interval: float = 1.0  # pause between write requests (GitHub's secondary limits)

    @property
    def owner(self) -> str:
        return self.repo.split("/", 1)[0]


@dataclass(frozen=True)
class AlertsConfig:
    """`[alerts]`: where alerts go and which. The webhook URL itself is never
    configured, only the name of the environment variable that holds it."""

    webhook_env: str = "SLACK_WEBHOOK_URL"
    disabled: tuple[str, ...] = ()  # alert kinds not sent anywhere
    jsonl: bool = True  # append alerts to alerts.jsonl in the state directory

    def enabled(self, kind: str) -> bool:
        return kind not in self.disabled


@dataclass(frozen=True)
class Thresholds:
    """`[monitor]`: (warning, critical) per criterion of `health.assess`."""

    heartbeat_warning_seconds: float = 15.0
    heartbeat_critical_seconds: float = 120.0
    backlog_warning: int = 10
    backlog_critical: int = 50
    oldest_warning_hours: float = 24.0
    oldest_critical_hours: float = 72.0
    failure_rate_warning: float = 0.2
    failure_rate_critical: float = 0.5
    failure_min_decisions: int = 3  # fewer decisions in the hour: the rate is not graded
    outbox_warning_minutes: float = 10.0
    outbox_critical_minutes: float = 60.0

    def pairs(self) -> list[tuple[str, str]]:
        names = [f.name for f in fields(self)]
        return [(n, n.replace("_warning", "_critical")) for n in names if "_warning" in n]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Thresholds:
        known = {f.name for f in fields(cls)}
        try:
            values = json.loads(text) if text else {}
            return cls(**{k: v for k, v in values.items() if k in known})
        except (ValueError, TypeError):
            return cls()

    @classmethod
    def strictest(cls, many: list[Thresholds]) -> Thresholds:
        """One set for several repositories: each threshold at its lowest."""
        if not many:
            return cls()
        return cls(**{f.name: min(getattr(t, f.name) for t in many) for f in fields(cls)})


@dataclass(frozen=True)
class StatusConfig:
    """`[status]`: what `errauto status` assumes."""

    minutes_per_manual_patch: float = 15.0  # a person's time to review and apply one patch


@dataclass(frozen=True)
class Config:
    target: str
    inbox: str = "patches"
    auto_merge_threshold: float = 0.95
    pr_threshold: float = 0.80
    workers: int = 2
    push: str | None = None
    submit_refs: tuple[str, ...] = ("refs/for/*",)
    protected_paths: tuple[str, ...] = DEFAULT_PROTECTED
    max_patch_bytes: int = Limits.max_patch_bytes
    max_hunk_lines: int = Limits.max_hunk_lines
    max_files: int = Limits.max_files
    max_blob_bytes: int = Limits.max_blob_bytes
    max_revalidations: int = 3
    secret_env: tuple[str, ...] = DEFAULT_SECRET_ENV
    checks: tuple[CheckConfig, ...] = ()
    github: GithubConfig | None = None
    alerts: AlertsConfig = AlertsConfig()
    monitor: Thresholds = Thresholds()
    status: StatusConfig = StatusConfig()
    source: str = "defaults"

    @property
    def target_ref(self) -> str:
        return "refs/heads/" + self.target

    def limits(self) -> Limits:
        return Limits(self.max_patch_bytes, self.max_hunk_lines, self.max_files, self.max_blob_bytes)

    def secrets(self) -> tuple[str, ...]:
        token = (self.github.token_env,) if self.github else ()
        webhook = (self.alerts.webhook_env,)
        return tuple(dict.fromkeys(DEFAULT_SECRET_ENV + self.secret_env + token + webhook))

    def checks_fingerprint(self) -> str:
        """Identifies what a validation ran: the checks and how they score."""
        blob = json.dumps([asdict(c) for c in self.checks], sort_keys=True, default=dict)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_thresholds(self, auto_merge: float | None, pr: float | None) -> Config:
        values = asdict(self)
        values["checks"] = self.checks
        values["github"] = self.github
        values["alerts"] = self.alerts
        values["monitor"] = self.monitor
        values["status"] = self.status
        if auto_merge is not None:
            values["auto_merge_threshold"] = auto_merge
        if pr is not None:
            values["pr_threshold"] = pr
        values["source"] = self.source + " (thresholds from the command line)"
        return _validated(values, self.source)


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
    """The configuration that judges patches for `target` in `repo`."""
    return _load(_Pygit2Source(repo), target)


def load_with_git(gitdir: str | Path, target: str | None = None, *, workdir: Path | None = None) -> Config:
    """As `load`, reading the repository with the git command line (no pygit2).

    `workdir`: the work tree whose config files are the fallback, if any.
    """
    return _load(_GitSource(Path(gitdir), workdir), target)


def from_text(text: str, where: str) -> Config:
    """A configuration not read from a repository (`errauto init`'s draft), checked as any other."""
    return _validated(_extract(text.encode("utf-8"), CONFIG_FILE, where) or {}, where)


def _load(source: _Source, target: str | None) -> Config:
    if target is None:
        # Which branch is the target is itself configuration: look at the
        # branch HEAD names, then take every other rule from the target.
        home = source.head_branch() or "main"
        raw, _ = _read_raw(source, home)
        value = raw.get("target", home) if raw is not None else home
        target = value if isinstance(value, str) else home
    target = target.removeprefix("refs/heads/")
    if not source.has_branch(target):
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
    config = _validated(values, where)
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


# --------------------------------------------------------------------------
# validation

_TOP_KEYS: dict[str, type | tuple[type, ...]] = {
    "target": str, "inbox": str, "auto_merge_threshold": float, "pr_threshold": float,
    "workers": int, "push": str, "submit_refs": list, "protected_paths": list,
    "max_patch_bytes": int, "max_hunk_lines": int, "max_files": int, "max_blob_bytes": int,
    "max_revalidations": int, "secret_env": list, "checks": dict, "github": dict,
    "alerts": dict, "monitor": dict, "status": dict,
}
_CHECK_KEYS: dict[str, type | tuple[type, ...]] = {
    "command": (str, list), "weight": float, "timeout": float, "gate": bool, "kind": str,
    "report": str, "tolerance": float, "env": dict,
}
_ALERTS_KEYS: dict[str, type | tuple[type, ...]] = {
    "webhook_env": str, "disabled": list, "jsonl": bool,
}
_MONITOR_KEYS: dict[str, type | tuple[type, ...]] = {
    name: (int if name == "failure_min_decisions" or name.startswith("backlog_") else float)
    for name in Thresholds.__dataclass_fields__
}
_STATUS_KEYS: dict[str, type | tuple[type, ...]] = {"minutes_per_manual_patch": float}
_GITHUB_KEYS: dict[str, type | tuple[type, ...]] = {
    "repo": str, "api_url": str, "token_env": str, "remote": str, "merge_method": str,
    "labels": list, "merge_via_pr": bool, "rate_limit_wait": float, "write_interval": float,
}


def _type_ok(value: Any, expected: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return expected is bool or (isinstance(expected, tuple) and bool in expected)
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string", float: "a number", int: "an integer", bool: "true or false",
             list: "a list", dict: "a table"}
    if isinstance(expected, tuple):
        return " or ".join(names[t] for t in expected)
    return names[expected]


_Fail = Callable[[str, str], ConfigError]


def _validated(values: Mapping[str, Any], source: str) -> Config:
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"config error in {source}: {key} {message}")

    _check_top_types(values, fail)
    out: dict[str, Any] = {"target": values["target"], "source": source}
    out.update(_thresholds(values, fail))
    out.update(_counts(values, fail))
    out.update(_names(values, fail))
    out.update(_string_lists(values, fail))
    out.update(_sections(values, fail))
    return Config(**out)


def _check_top_types(values: Mapping[str, Any], fail: _Fail) -> None:
    for key, value in values.items():
        if key == "source" or (key in _TOP_KEYS and _already_checked(key, value)):
            continue
        if key not in _TOP_KEYS:
            raise fail(key, "is not a known setting (see docs/configuration.md)")
        if not _type_ok(value, _TOP_KEYS[key]):
            raise fail(key, f"must be {_type_name(_TOP_KEYS[key])}, got {value!r}")


def _already_checked(key: str, value: Any) -> bool:
    """A value taken from a `Config` (`with_thresholds`), not from a file: valid as it is."""
    if isinstance(value, (AlertsConfig, Thresholds, StatusConfig)):
        return True
    if key == "github":
        return value is None or isinstance(value, GithubConfig)
    if key in ("checks", "submit_refs", "protected_paths", "secret_env"):
        return isinstance(value, tuple)
    return key == "push" and value is None


def _thresholds(values: Mapping[str, Any], fail: _Fail) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("auto_merge_threshold", "pr_threshold"):
        if key in values:
            v = float(values[key])
            if not 0.0 <= v <= 1.0:
                raise fail(key, f"must be between 0 and 1, got {v}")
            out[key] = v
    am = out.get("auto_merge_threshold", Config.auto_merge_threshold)
    pr = out.get("pr_threshold", Config.pr_threshold)
    if pr > am:
        raise fail("pr_threshold", f"({pr}) must not be above auto_merge_threshold ({am})")
    return out


def _counts(values: Mapping[str, Any], fail: _Fail) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("workers", "max_patch_bytes", "max_hunk_lines", "max_files", "max_blob_bytes"):
        if key in values:
            if values[key] < 1:
                raise fail(key, f"must be at least 1, got {values[key]}")
            out[key] = int(values[key])
    if "max_revalidations" in values:
        if values["max_revalidations"] < 0:
            raise fail("max_revalidations", f"must not be negative, got {values['max_revalidations']}")
        out["max_revalidations"] = int(values["max_revalidations"])
    return out


def _names(values: Mapping[str, Any], fail: _Fail) -> dict[str, Any]:
    """The target branch, the inbox folder and the remote to push to."""
    out: dict[str, Any] = {}
    for key in ("target", "inbox"):
        if key in values:
            v = values[key].strip()
            if not v or v.startswith("/") or ".." in v.split("/"):
                raise fail(key, f"must be a relative name, got {values[key]!r}")
            out[key] = v.removeprefix("refs/heads/") if key == "target" else v
    if values.get("push") is not None:
        if not values["push"].strip():
            raise fail("push", "must name a remote")
        out["push"] = values["push"].strip()
    return out


def _string_lists(values: Mapping[str, Any], fail: _Fail) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("submit_refs", "protected_paths", "secret_env"):
        if key in values:
            items = tuple(values[key])
            if not all(isinstance(i, str) and i for i in items):
                raise fail(key, "must be a list of non-empty strings")
            out[key] = items
    for ref in out.get("submit_refs", ()):
        if not ref.startswith("refs/"):
            raise fail("submit_refs", f"entries must start with refs/, got {ref!r}")
    return out


def _sections(values: Mapping[str, Any], fail: _Fail) -> dict[str, Any]:
    """The tables: checks, github, alerts, monitor, status."""
    out: dict[str, Any] = {}
    checks = values.get("checks", ())
    if isinstance(checks, tuple):
        out["checks"] = checks
    else:
        out["checks"] = tuple(_check(name, spec, fail) for name, spec in checks.items())
    github = values.get("github")
    out["github"] = github if github is None or isinstance(github, GithubConfig) else _github(github, fail)
    parsers: tuple[tuple[str, Callable[[Mapping[str, Any], _Fail], Any]], ...] = (
        ("alerts", _alerts), ("monitor", _monitor), ("status", _status))
    for key, parse in parsers:
        if key in values:
            value = values[key]
            out[key] = value if not isinstance(value, dict) else parse(value, fail)
    return out


def _check(name: str, spec: Any, fail: _Fail) -> CheckConfig:
    key = f"checks.{name}"
    if not isinstance(spec, dict):
        raise fail(key, "must be a table")
    for k, v in spec.items():
        if k not in _CHECK_KEYS:
            raise fail(f"{key}.{k}", "is not a known check setting (see docs/configuration.md)")
        if not _type_ok(v, _CHECK_KEYS[k]):
            raise fail(f"{key}.{k}", f"must be {_type_name(_CHECK_KEYS[k])}, got {v!r}")
    if "command" not in spec:
        raise fail(f"{key}.command", "is required")
    argv = _argv(f"{key}.command", spec["command"], fail)
    if "weight" in spec:
        weight = float(spec["weight"])
    elif name in DEFAULT_WEIGHTS:
        weight = DEFAULT_WEIGHTS[name]
    else:
        raise fail(f"{key}.weight", f"is required for a check not named {', '.join(DEFAULT_WEIGHTS)}")
    if weight < 0:
        raise fail(f"{key}.weight", f"must not be negative, got {weight}")
    timeout = float(spec.get("timeout", 600))
    if timeout <= 0:
        raise fail(f"{key}.timeout", f"must be positive, got {timeout}")
    kind = spec.get("kind", "coverage" if name == "coverage" else "command")
    if kind not in ("command", "coverage"):
        raise fail(f"{key}.kind", f"must be 'command' or 'coverage', got {kind!r}")
    tolerance = float(spec.get("tolerance", 5.0))
    if tolerance <= 0:
        raise fail(f"{key}.tolerance", f"must be positive, got {tolerance}")
    env = spec.get("env", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise fail(f"{key}.env", "must map names to strings")
    return CheckConfig(
        name=name, command=argv, weight=weight, timeout=timeout,
        gate=bool(spec.get("gate", name == "tests")), kind=kind,
        report=str(spec.get("report", "coverage.json")), tolerance=tolerance, env=dict(env),
    )


def _argv(key: str, command: str | list[Any], fail: _Fail) -> tuple[str, ...]:
    """A check's command: a list of words, or one string split as a shell would (no shell runs it)."""
    if isinstance(command, str):
        try:
            argv = tuple(shlex.split(command))
        except ValueError as exc:
            raise fail(key, f"cannot be split into words: {exc}") from None
    else:
        if not all(isinstance(a, str) for a in command):
            raise fail(key, "must be a list of strings")
        argv = tuple(command)
    if not argv:
        raise fail(key, "is empty")
    return argv


_REPO_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _github(spec: Mapping[str, Any], fail: _Fail) -> GithubConfig:
    _section_types("github", spec, _GITHUB_KEYS, fail)
    if "repo" not in spec:
        raise fail("github.repo", 'is required: the repository pull requests go to, as "owner/name"')
    out: dict[str, Any] = {"repo": _github_repo(spec["repo"], fail)}
    for key, parse in _GITHUB_PARSERS:
        if key in spec:
            out[key] = parse(spec[key], fail)
    return GithubConfig(**out)


def _github_repo(value: str, fail: _Fail) -> str:
    repo = value.strip()
    if not _REPO_NAME.fullmatch(repo) or any(p in (".", "..") for p in repo.split("/")):
        raise fail("github.repo", f'must be "owner/name", got {value!r}')
    return repo


def _token_env(value: str, fail: _Fail) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise fail("github.token_env", f"must name an environment variable, got {value!r}")
    return value


def _remote(value: str, fail: _Fail) -> str:
    remote = value.strip()
    # It is passed to `git push`: a leading dash would be read as an option.
    if not remote or remote.startswith("-") or any(c.isspace() for c in remote):
        raise fail("github.remote", f"must name a git remote, got {value!r}")
    return remote


def _merge_method(value: str, fail: _Fail) -> str:
    if value not in MERGE_METHODS:
        raise fail("github.merge_method", f"must be one of {', '.join(MERGE_METHODS)}, got {value!r}")
    return value


def _labels(value: list[Any], fail: _Fail) -> tuple[str, ...]:
    labels = tuple(value)
    if not all(isinstance(l, str) and l.strip() and len(l) <= 50 for l in labels):
        raise fail("github.labels", "must be a list of non-empty strings of at most 50 characters")
    return tuple(dict.fromkeys(l.strip() for l in labels))


def _api_url(value: str, fail: _Fail) -> str:
    url = value.strip().rstrip("/")
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise fail("github.api_url", f"must be an http(s) URL such as {GITHUB_API_URL}, got {value!r}")
    if parts.username or parts.password:
        # Never in the config: the token comes from the environment only.
        raise fail("github.api_url", "must not contain credentials (the token comes from github.token_env)")
    if parts.query or parts.fragment:
        raise fail("github.api_url", f"must not have a query or fragment, got {value!r}")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise fail("github.api_url", f"must use https (the token would travel in clear), got {value!r}")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _seconds(key: str) -> Callable[[float, _Fail], float]:
    def parse(value: float, fail: _Fail) -> float:
        if value < 0:
            raise fail(key, f"must not be negative, got {value}")
        return float(value)
    return parse


def _as_given(value: Any, fail: _Fail) -> Any:
    return value


# The optional `[github]` keys, in the order they are checked (after `repo`).
_GITHUB_PARSERS: tuple[tuple[str, Callable[[Any, _Fail], Any]], ...] = (
    ("api_url", _api_url),
    ("token_env", _token_env),
    ("remote", _remote),
    ("merge_method", _merge_method),
    ("labels", _labels),
    ("merge_via_pr", _as_given),
    ("rate_limit_wait", _seconds("github.rate_limit_wait")),
    ("write_interval", _seconds("github.write_interval")),
)


def _section_types(section: str, spec: Mapping[str, Any], keys: Mapping[str, type | tuple[type, ...]],
                   fail: _Fail) -> None:
    for k, v in spec.items():
        if k not in keys:
            raise fail(f"{section}.{k}", f"is not a known {section} setting (see docs/configuration.md)")
        if not _type_ok(v, keys[k]):
            raise fail(f"{section}.{k}", f"must be {_type_name(keys[k])}, got {v!r}")


def _alerts(spec: Mapping[str, Any], fail: _Fail) -> AlertsConfig:
    _section_types("alerts", spec, _ALERTS_KEYS, fail)
    out: dict[str, Any] = {}
    if "webhook_env" in spec:
        if not _ENV_NAME.fullmatch(spec["webhook_env"]):
            raise fail("alerts.webhook_env", f"must name an environment variable, got {spec['webhook_env']!r}")
        out["webhook_env"] = spec["webhook_env"]
    if "disabled" in spec:
        for kind in spec["disabled"]:
            if kind not in ALERT_KINDS:
                raise fail("alerts.disabled", f"has {kind!r}, which is not one of {', '.join(ALERT_KINDS)}")
        out["disabled"] = tuple(dict.fromkeys(spec["disabled"]))
    if "jsonl" in spec:
        out["jsonl"] = spec["jsonl"]
    return AlertsConfig(**out)


def _monitor(spec: Mapping[str, Any], fail: _Fail) -> Thresholds:
    _section_types("monitor", spec, _MONITOR_KEYS, fail)
    for key, value in spec.items():
        if value < 0:
            raise fail(f"monitor.{key}", f"must not be negative, got {value}")
        if key.startswith("failure_rate_") and value > 1:
            raise fail(f"monitor.{key}", f"must be between 0 and 1, got {value}")
    values: dict[str, Any] = {k: (int(v) if _MONITOR_KEYS[k] is int else float(v)) for k, v in spec.items()}
    thresholds = Thresholds(**values)
    for warning, critical in thresholds.pairs():
        low, high = getattr(thresholds, warning), getattr(thresholds, critical)
        if low > high:
            if critical in spec:
                raise fail(f"monitor.{critical}", f"({high}) must not be below {warning} ({low})")
            raise fail(f"monitor.{warning}", f"({low}) must not be above {critical} ({high})")
    return thresholds


def _status(spec: Mapping[str, Any], fail: _Fail) -> StatusConfig:
    _section_types("status", spec, _STATUS_KEYS, fail)
    minutes = float(spec.get("minutes_per_manual_patch", StatusConfig.minutes_per_manual_patch))
    if minutes < 0:
        raise fail("status.minutes_per_manual_patch", f"must not be negative, got {minutes}")
    return StatusConfig(minutes_per_manual_patch=minutes)
