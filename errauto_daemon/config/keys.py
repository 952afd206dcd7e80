"""Checking every key of a configuration: an unknown key, a wrong type or an
impossible value fails with one line that names the key."""
from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from errauto_daemon.alerts import ALERT_KINDS
from errauto_daemon.config.model import (
    DEFAULT_WEIGHTS,
    GITHUB_API_URL,
    MERGE_METHODS,
    SANDBOXES,
    AlertsConfig,
    CheckConfig,
    Config,
    EvidenceConfig,
    GithubConfig,
    StatusConfig,
    Thresholds,
)
from errauto_daemon.errors import ConfigError

if TYPE_CHECKING:
    pass


# --------------------------------------------------------------------------
# validation

_TOP_KEYS: dict[str, type | tuple[type, ...]] = {
    "target": str, "inbox": str, "auto_merge_threshold": float, "pr_threshold": float,
    "workers": int, "push": str, "remote_url": str, "submit_refs": list, "protected_paths": list,
    "max_patch_bytes": int, "max_hunk_lines": int, "max_files": int, "max_blob_bytes": int,
    "max_parse_seconds": float, "max_revalidations": int, "secret_env": list, "checks": dict, "github": dict,
    "alerts": dict, "monitor": dict, "status": dict, "evidence": dict, "sandbox": str, "sandbox_readable": list,
}
_CHECK_KEYS: dict[str, type | tuple[type, ...]] = {
    "command": (str, list), "weight": float, "timeout": float, "gate": bool, "kind": str,
    "report": str, "tolerance": float, "env": dict, "junit": str, "line_data": str, "reruns": int,
    "network": bool, "memory_mb": int, "max_processes": int, "max_file_mb": int,
}
_EVIDENCE_KEYS: dict[str, type | tuple[type, ...]] = {"min_changed_lines_covered": float, "test_files": list}
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


def validated(values: Mapping[str, Any], source: str) -> Config:
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"config error in {source}: {key} {message}")

    _check_top_types(values, fail)
    out: dict[str, Any] = {"target": values["target"], "source": source}
    out.update(_thresholds(values, fail))
    out.update(_counts(values, fail))
    out.update(_names(values, fail))
    out.update(_string_lists(values, fail))
    out.update(_sections(values, fail))
    out.update(_sandbox(values, fail))
    _check_weights(out["checks"], fail)
    return Config(**out)


def _check_weights(checks: tuple[CheckConfig, ...], fail: _Fail) -> None:
    """Checks whose weights are all 0 score every patch 0: everything would be held."""
    if checks and not any(c.weight > 0 for c in checks):
        names = ", ".join(f"checks.{c.name}" for c in checks)
        raise fail("checks", f"have no weight above 0 ({names}): every patch would score 0 and be held; "
                             "give at least one check a weight")


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
    if isinstance(value, (AlertsConfig, Thresholds, StatusConfig, EvidenceConfig)):
        return True
    if key == "github":
        return value is None or isinstance(value, GithubConfig)
    if key in ("checks", "submit_refs", "protected_paths", "secret_env", "sandbox_readable"):
        return isinstance(value, tuple)
    return key in ("push", "remote_url") and value is None


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
    if "max_parse_seconds" in values:
        if not values["max_parse_seconds"] > 0:
            raise fail("max_parse_seconds", f"must be above 0, got {values['max_parse_seconds']}")
        out["max_parse_seconds"] = float(values["max_parse_seconds"])
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
    if values.get("remote_url") is not None:
        if not values["remote_url"].strip():
            raise fail("remote_url", "must be the URL the machines clone the repository from")
        out["remote_url"] = values["remote_url"].strip()
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


def _sandbox(values: Mapping[str, Any], fail: _Fail) -> dict[str, Any]:
    """What checks run in, and what more they may read."""
    out: dict[str, Any] = {}
    if "sandbox" in values:
        if values["sandbox"] not in SANDBOXES:
            raise fail("sandbox", f"must be {' or '.join(repr(s) for s in SANDBOXES)}, got {values['sandbox']!r}")
        out["sandbox"] = values["sandbox"]
    if "sandbox_readable" in values:
        items = tuple(values["sandbox_readable"])
        for item in items:
            if not isinstance(item, str) or not (item.startswith("/") or item.startswith("~/")):
                raise fail("sandbox_readable", f"entries must be absolute paths or start with ~/, got {item!r}")
        out["sandbox_readable"] = items
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
        ("alerts", _alerts), ("monitor", _monitor), ("status", _status), ("evidence", _evidence))
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
        tolerance=tolerance, env=dict(env), **_reports(key, spec, fail), **_check_limits(key, spec, fail),
    )


def _check_limits(key: str, spec: Mapping[str, Any], fail: _Fail) -> dict[str, Any]:
    """The check's network and what its sandbox may use."""
    out: dict[str, Any] = {"network": bool(spec.get("network", False))}
    for name in ("memory_mb", "max_processes", "max_file_mb"):
        if name in spec:
            if spec[name] < 1:
                raise fail(f"{key}.{name}", f"must be at least 1, got {spec[name]}")
            out[name] = int(spec[name])
    return out


def _reports(key: str, spec: Mapping[str, Any], fail: _Fail) -> dict[str, Any]:
    """The files a check writes for errauto to read, and how often a failing test runs again."""
    out: dict[str, Any] = {}
    for name in ("report", "junit", "line_data"):
        path = spec.get(name, "coverage.json" if name == "report" else None)
        if path is None:
            continue
        problem = _report_problem(path)
        if problem:
            raise fail(f"{key}.{name}", f"must be a path inside the repository: {problem}, got {path!r}")
        out[name] = path
    reruns = spec.get("reruns", 2)
    if not 0 <= reruns <= 10:
        raise fail(f"{key}.reruns", f"must be between 0 and 10, got {reruns}")
    out["reruns"] = reruns
    return out


def _report_problem(path: str) -> str | None:
    """Why a coverage report's path would read a file outside the worktree, or None.

    errauto reads it after the check ran; `..` or an absolute path would make
    it read (and parse) any file the user can.
    """
    if not path.strip():
        return "it is empty"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "it is absolute"
    if "\\" in path or "\0" in path:
        return "it has a backslash or a NUL"
    parts = path.split("/")
    if ".." in parts:
        return "it climbs out with '..'"
    if any(p.lower().rstrip(". ") == ".git" for p in parts):
        return "it is inside .git"
    return None


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


def _evidence(spec: Mapping[str, Any], fail: _Fail) -> EvidenceConfig:
    _section_types("evidence", spec, _EVIDENCE_KEYS, fail)
    out: dict[str, Any] = {}
    if "min_changed_lines_covered" in spec:
        share = float(spec["min_changed_lines_covered"])
        if not 0.0 <= share <= 1.0:
            raise fail("evidence.min_changed_lines_covered", f"must be between 0 and 1, got {share}")
        out["min_changed_lines_covered"] = share
    if "test_files" in spec:
        globs = spec["test_files"]
        if not globs or not all(isinstance(g, str) and g.strip() for g in globs):
            raise fail("evidence.test_files", "must be a non-empty list of globs")
        out["test_files"] = tuple(globs)
    return EvidenceConfig(**out)


def with_thresholds(config: Config, auto_merge: float | None, pr: float | None) -> Config:
    """The same configuration with other thresholds (`apply --auto-merge-threshold`),
    validated again."""
    # The sections as they are: asdict would turn them back into tables to parse.
    values = {f.name: getattr(config, f.name) for f in fields(config)}
    if auto_merge is not None:
        values["auto_merge_threshold"] = auto_merge
    if pr is not None:
        values["pr_threshold"] = pr
    values["source"] = config.source + " (thresholds from the command line)"
    return validated(values, config.source)
