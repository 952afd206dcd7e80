"""What a configuration is: its records, their defaults, and the constants they use."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from errauto_daemon.limits import Limits

if TYPE_CHECKING:
    pass


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
DEFAULT_SECRET_ENV = ("GITHUB_TOKEN", "SLACK_WEBHOOK_URL", "PGPASSWORD")
SANDBOXES = ("bwrap", "off")
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
    junit: str | None = None  # the JUnit XML report of per-test results the command writes
    line_data: str | None = None  # the coverage.py JSON report (with line data) the command writes
    reruns: int = 2  # times a newly failing test is run again before the patch is blamed for it
    network: bool = False  # the sandbox lets it reach the network
    memory_mb: int = 2048  # the sandbox is killed when its processes' resident memory is above this
    max_processes: int = 512  # ... when it has more processes at once
    max_file_mb: int = 1024  # the largest file it may write


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

    heartbeat_warning_seconds: float = 15.0  # presence.ALIVE_WITHIN (tests/test_presence.py keeps them equal)
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
class EvidenceConfig:
    """`[evidence]`: what per-test and line evidence must show for an auto-merge."""

    # The share of a patch's changed code lines the tests must run (0 to 1);
    # None: reported, not required.
    min_changed_lines_covered: float | None = None
    # Which files are tests (globs on the name or the path), besides those the
    # test reports name.
    test_files: tuple[str, ...] = ("test_*.py", "*_test.py", "tests/**/*.py", "test/**/*.py", "conftest.py")


@dataclass(frozen=True)
class Config:
    target: str
    inbox: str = "patches"
    auto_merge_threshold: float = 0.95
    pr_threshold: float = 0.80
    workers: int = 2
    push: str | None = None
    # The URL every machine knows the repository by (machines sharing one state); else `push`'s URL.
    remote_url: str | None = None
    submit_refs: tuple[str, ...] = ("refs/for/*",)
    protected_paths: tuple[str, ...] = DEFAULT_PROTECTED
    max_patch_bytes: int = Limits.max_patch_bytes
    max_hunk_lines: int = Limits.max_hunk_lines
    max_files: int = Limits.max_files
    max_blob_bytes: int = Limits.max_blob_bytes
    max_parse_seconds: float = Limits.max_parse_seconds
    max_revalidations: int = 3
    secret_env: tuple[str, ...] = DEFAULT_SECRET_ENV
    checks: tuple[CheckConfig, ...] = ()
    sandbox: str = "bwrap"  # what checks run in: "bwrap", or "off" (unsandboxed)
    sandbox_readable: tuple[str, ...] = ()  # more paths checks may read ("~/" is the user's home)
    github: GithubConfig | None = None
    alerts: AlertsConfig = AlertsConfig()
    monitor: Thresholds = Thresholds()
    status: StatusConfig = StatusConfig()
    evidence: EvidenceConfig = EvidenceConfig()
    source: str = "defaults"

    @property
    def target_ref(self) -> str:
        return "refs/heads/" + self.target

    def limits(self) -> Limits:
        return Limits(self.max_patch_bytes, self.max_hunk_lines, self.max_files, self.max_blob_bytes,
                      self.max_parse_seconds)

    def secrets(self) -> tuple[str, ...]:
        token = (self.github.token_env,) if self.github else ()
        webhook = (self.alerts.webhook_env,)
        return tuple(dict.fromkeys(DEFAULT_SECRET_ENV + self.secret_env + token + webhook))

    def checks_fingerprint(self) -> str:
        """Identifies what a validation ran: the checks and how they score."""
        ran: list[object] = [asdict(c) for c in self.checks]
        if self.sandbox == "off":
            ran.append({"sandbox": "off"})  # results from outside a sandbox are not reused inside one
        blob = json.dumps(ran, sort_keys=True, default=dict)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


