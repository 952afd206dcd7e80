"""`errauto init`: a starter config, the inbox folder, and the next steps."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from errauto_daemon.config import CONFIG_FILE, PYPROJECT, head_branch
from errauto_daemon.errors import FatalError
from errauto_daemon.presence import wake
from errauto_daemon.inbox import ensure_inbox
from errauto_daemon.intake import open_repo
from errauto_daemon.store import Store
from errauto_daemon.workspace import repo_root


def _text(root: Path, *names: str) -> str:
    out = []
    for name in names:
        path = root / name
        if path.is_file():
            out.append(path.read_text(errors="replace"))
    for path in root.glob("requirements*.txt"):
        out.append(path.read_text(errors="replace"))
    return "\n".join(out)


def detect(root: Path) -> dict[str, str | None]:
    """The check commands this project appears to use (None: not found)."""
    meta = _text(root, PYPROJECT, "setup.cfg", "tox.ini", "setup.py")
    has_tests = (root / "tests").is_dir() or (root / "test").is_dir() or any(root.glob("test_*.py"))
    found: dict[str, str | None] = {}
    if "pytest" in meta or (root / "pytest.ini").is_file() or (root / "conftest.py").is_file():
        found["tests"] = "python -m pytest -q"
    elif has_tests:
        found["tests"] = "python -m unittest discover -q"
    else:
        found["tests"] = None

    def uses(tool: str, *files: str) -> bool:
        return (re.search(rf"\b{tool}\b", meta) is not None
                or any((root / f).is_file() for f in files)
                or shutil.which(tool) is not None)

    found["lint"] = "ruff check ." if uses("ruff", "ruff.toml", ".ruff.toml") else None
    found["typecheck"] = "mypy ." if uses("mypy", "mypy.ini", ".mypy.ini") else None
    source = "src" if (root / "src").is_dir() else "."
    found["security"] = f"bandit -q -r {source}" if uses("bandit", ".bandit") else None
    return found


def render(target: str, found: dict[str, str | None]) -> str:
    lines = [
        "# errauto configuration: see docs/configuration.md for every key.",
        "# errauto reads this file from the committed tree of the target branch,",
        "# so a patch can never change the rules it is judged by. Commit it.",
        "",
        f'target = "{target}"                 # the branch patches are merged into',
        'inbox = "patches"                # drop patch files here for the daemon',
        "auto_merge_threshold = 0.95      # merged by itself at or above this confidence",
        "pr_threshold = 0.80              # a pull request at or above this; below, review",
        "workers = 2",
        '# push = "origin"                # push the merged target (fast-forward only)',
        "",
        "# A patch touching these paths is never merged without a person.",
        "protected_paths = [",
        '    ".github/**", ".pre-commit-config.yaml", "pyproject.toml", "**/conftest.py", ".errauto.toml",',
        "]",
        "",
        "# Each check runs in an isolated worktree with the patch applied.",
        "# weight: its share of the confidence; gate = true: must pass to auto-merge.",
    ]
    weights = {"tests": 0.40, "lint": 0.20, "typecheck": 0.15, "security": 0.15}
    for name, weight in weights.items():
        command = found.get(name)
        prefix = "" if command else "# "
        note = "" if command else "   (not detected; uncomment and adjust)"
        lines.append("")
        lines.append(f"{prefix}[checks.{name}]{note}")
        lines.append(f'{prefix}command = "{command or _fallback(name)}"')
        lines.append(f"{prefix}weight = {weight}")
        if name == "tests":
            lines.append(f"{prefix}gate = true")
        lines.append(f"{prefix}timeout = 600")
    lines += [
        "",
        "# [checks.coverage]               # compares coverage with the base commit's",
        '# command = "python -m pytest -q --cov --cov-report=json"',
        "# weight = 0.10",
        "",
    ]
    return "\n".join(lines)


def _fallback(name: str) -> str:
    return {"tests": "python -m pytest -q", "lint": "ruff check .", "typecheck": "mypy .",
            "security": "bandit -q -r ."}[name]


def init(repo_dir: str, *, force: bool) -> int:
    repo = open_repo(repo_dir)
    if repo.is_bare:
        raise FatalError("errauto init needs a work tree; for a server, see `errauto hooks install --server`")
    root = Path(repo_root(repo))
    config_path = root / CONFIG_FILE
    if config_path.exists() and not force:
        raise FatalError(f"{config_path} already exists (use --force to overwrite it)")
    found = detect(root)
    target = head_branch(repo) or "main"
    config_path.write_text(render(target, found))

    store = Store()
    store.add_repo(str(root))
    inbox = ensure_inbox(str(root))
    wake()

    detected = [n for n, c in found.items() if c]
    print(f"wrote {config_path}")
    print(f"  checks detected: {', '.join(detected) if detected else 'none (edit the file)'}")
    print(f"created the inbox {inbox}/ (kept out of git by .git/info/exclude)")
    print("registered the repository: a running daemon (errauto daemon start) watches it")
    print()
    print("next steps:")
    print(f"  1. review {CONFIG_FILE}, then commit it: git add {CONFIG_FILE} && git commit -m 'Configure errauto'")
    print("  2. try a patch now:               errauto apply some-fix.patch")
    print("  3. or let the daemon do it:       errauto daemon start; drop patches into patches/")
    print("  4. see what happened:             errauto queue list")
    return 0
