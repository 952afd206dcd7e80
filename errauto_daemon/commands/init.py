"""`errauto init`: a starter config, the inbox folder, and the next steps.

Each detected check is tried before it is written: a tool that is not
installed is left out, and (unless --no-run) the checks are run once on the
target's tip in a pooled worktree; one that already fails there is written
disabled, with why, so no patch is held for a failure it did not cause.

A pytest project's tests check also writes its per-test results (JUnit XML)
and, when pytest-cov is importable by the project's `python`, its line data,
in the same run, into `.errauto/`, which init keeps out of commits with
`.gitignore`.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pygit2

from errauto_daemon import checks, output, paths, progress, sandbox
from errauto_daemon import config as config_mod
from errauto_daemon.config import CONFIG_FILE, PYPROJECT, Config, head_branch
from errauto_daemon.domain import CheckStatus
from errauto_daemon.errors import FatalError
from errauto_daemon.inbox import ensure_inbox
from errauto_daemon.presence import wake
from errauto_daemon.repo import open_repo, repo_root
from errauto_daemon.store import Store
from errauto_daemon.validate import run_observed
from errauto_daemon.workspace import Pool

CHECK_NAMES = ("tests", "lint", "typecheck", "security")
REPORTS_DIR = ".errauto/"  # where the checks init writes put their reports
JUNIT = ".errauto/junit.xml"
LINE_DATA = ".errauto/coverage.json"
PYTEST = "python -m pytest -q"
# Exits 0 when pytest-cov is importable and knows `--cov-report=json:PATH` (3.0 on).
_PYTEST_COV_PROBE = ("import importlib.metadata as m, importlib.util as u, sys; "
                     "sys.exit(0 if u.find_spec('pytest_cov') and int(m.version('pytest-cov').split('.')[0]) >= 3 "
                     "else 1)")


# What `init` found out about a check: its own words, not a check's status.
TrialResult = Literal["not detected", "missing", "passed", "fails", "not run"]
# What became of `.errauto/` in `.gitignore`.
Ignoring = Literal["ignored already", "added", "not a file"]


@dataclass(frozen=True)
class Reports:
    """What the tests check reports besides its exit code, for errauto to read."""

    junit: str | None = None  # per-test results (JUnit XML)
    line_data: str | None = None  # coverage.py's JSON report, from the same run

    def command(self, command: str) -> str:
        """`command` (pytest's) with the options that write these reports."""
        flags = [f"--junitxml={self.junit}"] if self.junit else []
        if self.line_data:
            flags += ["--cov", f"--cov-report=json:{self.line_data}"]
        return " ".join([command, *flags])


@dataclass(frozen=True)
class Trial:
    """What `init` found out about one check before writing it."""

    name: str
    command: str | None  # None: not detected
    result: TrialResult
    detail: str = ""

    @property
    def enabled(self) -> bool:
        return self.result in ("passed", "not run")


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
        found["tests"] = PYTEST
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


def reports_for(root: Path, command: str | None, env: dict[str, str]) -> Reports:
    """The reports a detected tests command can write: pytest's JUnit report,
    and its line data when pytest-cov is importable by the project's `python`."""
    if command != PYTEST:
        return Reports()
    return Reports(JUNIT, LINE_DATA if _has_pytest_cov(root, env) else None)


def _has_pytest_cov(root: Path, env: dict[str, str]) -> bool:
    python = checks.resolve_executable("python", root, env)
    if python is None:
        return False
    try:
        probe = subprocess.run([python, "-c", _PYTEST_COV_PROBE], cwd=root, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def render(target: str, found: dict[str, str | None], disabled: dict[str, str] | None = None,
           reports: Reports = Reports()) -> str:
    """The starter config; a check in `disabled` is written commented out, with why.
    `reports`: what the tests check (its command already writes them) reports."""
    disabled = disabled or {}
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
        why = disabled.get(name)
        on = command is not None and why is None
        prefix = "" if on else "# "
        note = "" if command else "   (not detected; uncomment and adjust)"
        lines.append("")
        if why is not None:
            lines.append(f"# disabled by errauto init: {_one_line(why)}")
            lines.append("# fix that (or the command), then uncomment.")
        lines.append(f"{prefix}[checks.{name}]{note}")
        lines.append(f'{prefix}command = "{command or _fallback(name)}"')
        lines.append(f"{prefix}weight = {weight}")
        if name == "tests":
            lines.append(f"{prefix}gate = true")
        lines.append(f"{prefix}timeout = 600")
        if name == "tests" and command is not None:
            lines += _report_lines(prefix, reports)
    lines += [
        "",
        "# [checks.coverage]               # compares total coverage with the base commit's",
        '# command = "python -m pytest -q --cov --cov-report=json"   # (a second run of the tests)',
        "# weight = 0.10",
    ]
    if reports.line_data:
        lines += [
            "",
            "# The tests check reports which of a patch's changed lines its tests ran.",
            "# To auto-merge only patches whose every changed line ran, uncomment:",
            "# [evidence]",
            "# min_changed_lines_covered = 1.0",
        ]
    return "\n".join([*lines, ""])


def _report_lines(prefix: str, reports: Reports) -> list[str]:
    if reports.junit is None:
        return []
    lines = ["# Each test's result, compared with the same test on the base commit:",
             f'{prefix}junit = "{reports.junit}"']
    if reports.line_data:
        lines += ["# The same run's line data: which of a patch's changed lines the tests ran.",
                  f'{prefix}line_data = "{reports.line_data}"']
    else:
        lines += ["# With pytest-cov installed, the same run can tell which changed lines the tests ran:",
                  f'# add "--cov --cov-report=json:{LINE_DATA}" to the command and',
                  f'# line_data = "{LINE_DATA}"']
    return lines


def _one_line(text: str) -> str:
    return output.shorten(text.replace("\n", " "), 160)


def _fallback(name: str) -> str:
    return {"tests": "python -m pytest -q", "lint": "ruff check .", "typecheck": "mypy .",
            "security": "bandit -q -r ."}[name]


def init(repo_dir: str, *, force: bool, run: bool = True) -> int:
    repo = open_repo(repo_dir)
    if repo.is_bare:
        raise FatalError("errauto init needs a work tree; for a server, see `errauto hooks install --server`")
    root = Path(repo_root(repo))
    config_path = root / CONFIG_FILE
    if config_path.exists() and not force:
        raise FatalError(f"{config_path} already exists (use --force to overwrite it)")
    found = detect(root)
    reports = reports_for(root, found["tests"], _env())
    if found["tests"] is not None:
        found["tests"] = reports.command(found["tests"])
    target = head_branch(repo) or "main"
    trials = _installed(root, found)
    tip = _tip(repo, target)
    ran_on = ""
    no_sandbox = sandbox.unavailable()
    if run and tip is not None and no_sandbox is None:
        draft = render(target, found, _disabled(trials), reports)
        trials = _run(repo, config_mod.from_text(draft, "the draft of errauto init"), tip, trials)
        ran_on = f" on {target} ({str(tip.id)[:12]})"
    config_path.write_text(render(target, found, _disabled(trials), reports))
    ignoring = _ignore_reports(repo, root) if reports.junit else "ignored already"

    store = Store()
    store.add_repo(str(root))
    inbox = ensure_inbox(str(root))
    wake()

    print(f"wrote {config_path}")
    print(f"sandbox for checks: {sandbox.describe('bwrap')}")
    _report(trials, ran_on, run=run, target=target, has_tip=tip is not None, sandboxed=no_sandbox is None)
    if any(t.name == "tests" and t.enabled for t in trials):
        _report_evidence(reports)
    if ignoring == "added":
        print(f"added {REPORTS_DIR} to .gitignore: the reports the checks write there stay out of commits")
    elif ignoring == "not a file":
        print(f"note: .gitignore is not a plain file: add {REPORTS_DIR} to what git ignores "
              "(the checks write their reports there)")
    print(f"created the inbox {inbox}/ (kept out of git by .git/info/exclude)")
    print("registered the repository: a running daemon (errauto daemon start) watches it")
    print()
    print("next steps:")
    files = f"{CONFIG_FILE} .gitignore" if ignoring == "added" else CONFIG_FILE
    print(f"  1. review {CONFIG_FILE}, then commit it: git add {files} && git commit -m 'Configure errauto'")
    print("  2. try a patch now:               errauto apply some-fix.patch")
    print("  3. or let the daemon do it:       errauto daemon start; drop patches into patches/")
    print("  4. see what happened:             errauto queue list")
    return 0


def _env() -> dict[str, str]:
    """The environment the checks will run in (the defaults' secrets removed)."""
    return checks.check_env(Config(target="main").secrets())


def _ignore_reports(repo: pygit2.Repository, root: Path) -> Ignoring:
    """Keep the checks' reports out of commits: `.errauto/` into `.gitignore`
    unless git ignores it already."""
    if repo.path_is_ignored(JUNIT):
        return "ignored already"
    path = root / ".gitignore"
    if path.is_symlink() or (path.exists() and not path.is_file()):
        return "not a file"
    text = path.read_text(errors="replace") if path.exists() else ""
    lead = "\n" if text and not text.endswith("\n") else ""
    with path.open("a") as f:
        f.write(f"{lead}# reports errauto's checks write ({CONFIG_FILE})\n{REPORTS_DIR}\n")
    return "added"


def _report_evidence(reports: Reports) -> None:
    if reports.line_data:
        print(f"tests: one run reports each test's result ({reports.junit}) and which lines ran "
              f"({reports.line_data})")
    elif reports.junit:
        print(f"tests: each test's result is reported ({reports.junit}); install pytest-cov for line data "
              "from the same run")


def _installed(root: Path, found: dict[str, str | None]) -> list[Trial]:
    """Each check's trial so far: not detected, missing (its program is not found), or not run."""
    env = _env()
    out = []
    for name in CHECK_NAMES:
        command = found.get(name)
        if command is None:
            out.append(Trial(name, None, "not detected"))
            continue
        program = command.split()[0]
        if checks.resolve_executable(program, root, env) is None:
            out.append(Trial(name, command, "missing", f"{program}: command not found"))
        else:
            out.append(Trial(name, command, "not run"))
    return out


def _disabled(trials: list[Trial]) -> dict[str, str]:
    return {t.name: t.detail for t in trials if t.command is not None and not t.enabled}


def _tip(repo: pygit2.Repository, target: str) -> pygit2.Commit | None:
    ref = repo.references.get("refs/heads/" + target)
    return None if ref is None else ref.peel(pygit2.Commit)


def _run(repo: pygit2.Repository, config: Config, tip: pygit2.Commit, trials: list[Trial]) -> list[Trial]:
    """Run the configured checks once on `tip`, in a pooled worktree (never the user's checkout)."""
    log_dir = paths.check_logs_dir() / "init"
    shown = progress.for_terminal()
    shown.phase(f"running the checks on {config.target} ({str(tip.id)[:12]}) once")
    results = {}
    try:
        with Pool(repo).acquire(tip) as slot:
            try:
                for check in config.checks:
                    results[check.name] = run_observed(config, check, slot.path,
                                                       log_dir / f"{check.name}.log", shown, view=slot.view())
            finally:
                slot.clean()
    finally:
        shown.finished()
    out = []
    for trial in trials:
        result = results.get(trial.name)
        if result is None:
            out.append(trial)
        elif result.status == CheckStatus.PASSED:
            out.append(Trial(trial.name, trial.command, "passed", f"{result.duration:.1f}s"))
        elif result.status == CheckStatus.MISSING:
            out.append(Trial(trial.name, trial.command, "missing", result.detail))
        else:
            why = f"fails on {config.target} ({result.detail})"
            last = _last_output_line(Path(result.log_path))
            out.append(Trial(trial.name, trial.command, "fails", f"{why}: {last}" if last else why))
    return out


def _last_output_line(log: Path) -> str:
    """The check's own last line of output (its log also holds errauto's header and footer)."""
    try:
        lines = log.read_text(errors="replace").splitlines()[2:]
    except OSError:
        return ""
    mine = [line.strip() for line in lines if line.strip() and not line.startswith("# errauto:")]
    return output.shorten(mine[-1], 100) if mine else ""


def _report(trials: list[Trial], ran_on: str, *, run: bool, target: str, has_tip: bool,
            sandboxed: bool) -> None:
    rows = []
    for t in trials:
        if t.result == "not detected":
            what = "not detected (commented out)"
        elif t.result == "missing":
            what = "left out: not installed"
        elif t.result == "fails":
            what = f"written disabled: {t.detail}"
        elif t.result == "passed":
            what = f"passes ({t.detail}): enabled"
        else:
            what = "enabled (not run)"
        rows.append([t.name, t.command or "-", what])
    if run and not sandboxed:
        print("checks (not run: no sandbox to run them in, see above):")
    elif run and has_tip:
        print(f"checks, run once{ran_on} in a separate worktree and a sandbox:")
    elif run:
        print(f"checks (not run: {target} has no commit yet):")
    else:
        print("checks (not run: --no-run):")
    print("\n".join("  " + line for line in output.table(["CHECK", "COMMAND", "RESULT"], rows).splitlines()))
    for t in trials:
        if t.result == "missing":
            print(f"  {t.name}: {t.detail}; left out of {CONFIG_FILE} (install it, then uncomment "
                  f"[checks.{t.name}])")


# -- the command line (main.py dispatches each parsed command here) --------------

def cli(args: Namespace) -> int:
    """`errauto init`."""
    return init(args.repo, force=args.force, run=not args.no_run)
