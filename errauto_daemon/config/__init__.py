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

    model   the records (`Config`, `CheckConfig`, ...) and their defaults
    keys    checking every key, building the records
    load    reading from a repository (pygit2, or the git command line)
"""
from errauto_daemon.config.keys import with_thresholds
from errauto_daemon.config.load import from_text, head_branch, load, load_with_git, secret_names
from errauto_daemon.config.model import (
    CONFIG_FILE,
    DEFAULT_PROTECTED,
    DEFAULT_SECRET_ENV,
    DEFAULT_WEIGHTS,
    GITHUB_API_URL,
    MERGE_METHODS,
    PYPROJECT,
    AlertsConfig,
    CheckConfig,
    Config,
    EvidenceConfig,
    GithubConfig,
    StatusConfig,
    Thresholds,
)

__all__ = [
    "CONFIG_FILE", "DEFAULT_PROTECTED", "DEFAULT_SECRET_ENV", "DEFAULT_WEIGHTS", "GITHUB_API_URL",
    "MERGE_METHODS", "PYPROJECT", "AlertsConfig", "CheckConfig", "Config", "EvidenceConfig", "GithubConfig", "StatusConfig",
    "Thresholds", "from_text", "head_branch", "load", "load_with_git", "secret_names", "with_thresholds",
]
