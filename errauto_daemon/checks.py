"""Run one configured check in a worktree.

A check is the project's own command (tests, lint, ...). It runs:
- in its own process group, so a timeout kills everything it started, and
  anything it leaves running when it exits is killed too;
- with an environment scrubbed of every GIT_* variable (a check's own git
  commands must act on the worktree, never on a repository a hook named)
  and of every configured secret, so patched code can never read the
  GitHub token or the webhook URL;
- with stdin closed, and stdout and stderr going to one log file per check;
- until it ends, times out, or `cancel` gives a reason to stop (asked ten
  times a second): then its whole process group is killed.

Every running check's process group is known here (`kill_running`), so a
daemon that must exit while a worker is stuck can still kill them all.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from errauto_daemon.config import CheckConfig
from errauto_daemon.domain import CheckStatus
from errauto_daemon.errors import STOPPING

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
POLL = 0.1  # seconds between looks at the check and at `cancel`

# Why a running check should stop (a person's reject, errauto stopping), or None.
CancelPoll = Callable[[], "str | None"]

_running: set[int] = set()  # the process groups of checks running now
_running_lock = threading.Lock()


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: CheckStatus
    exit_code: int | None
    duration: float
    log_path: str
    detail: str
    value: float | None = None  # coverage checks: the percentage covered


def check_env(secrets: Iterable[str], extra: Mapping[str, str] | None = None,
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    secret_names = set(secrets)
    for key in list(env):
        if key.startswith("GIT_") or key in secret_names or key.startswith("ERRAUTO_"):
            del env[key]
    # Patched code runs here; keep bytecode caches out of the worktree.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for key, value in (extra or {}).items():
        if key not in secret_names:
            env[key] = value
    return env


def resolve_executable(argv0: str, cwd: Path, env: Mapping[str, str]) -> str | None:
    if "/" in argv0:
        candidate = Path(argv0) if os.path.isabs(argv0) else cwd / argv0
        return str(candidate) if os.access(candidate, os.X_OK) and candidate.is_file() else None
    return shutil.which(argv0, path=env.get("PATH", os.defpath))


def run_check(
    check: CheckConfig,
    cwd: Path,
    log_path: Path,
    env: Mapping[str, str],
    cancel: CancelPoll | threading.Event | None = None,
) -> CheckResult:
    """Run `check` in `cwd`; `cancel`: why to stop it early (an Event: errauto is stopping)."""
    if isinstance(cancel, threading.Event):
        cancel = _poll_event(cancel)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    executable = resolve_executable(check.command[0], cwd, env)
    with open(log_path, "wb") as log:
        log.write(f"$ {' '.join(check.command)}\n# in {cwd}\n".encode("utf-8", "replace"))
        log.flush()
        if executable is None:
            message = f"{check.command[0]}: command not found"
            log.write(message.encode() + b"\n")
            return CheckResult(check.name, CheckStatus.MISSING, None, 0.0, str(log_path), message)
        try:
            proc = subprocess.Popen(
                [executable, *check.command[1:]], cwd=cwd, env=dict(env),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            message = f"{check.command[0]}: cannot run ({exc.strerror})"
            log.write(message.encode() + b"\n")
            return CheckResult(check.name, CheckStatus.MISSING, None, 0.0, str(log_path), message)
        with _running_lock:
            _running.add(proc.pid)
        try:
            status, why = _wait(proc, start + check.timeout, cancel)
            if status is not None:
                _kill_group(proc)
            else:
                _kill_leftovers(proc.pid)
        finally:
            with _running_lock:
                _running.discard(proc.pid)
        duration = time.monotonic() - start
        code = proc.returncode
        if status == CheckStatus.TIMEOUT:
            detail = f"timed out after {check.timeout:g}s"
            log.write(f"\n# errauto: {detail}; process group killed\n".encode())
            return CheckResult(check.name, CheckStatus.TIMEOUT, code, duration, str(log_path), detail)
        if status == CheckStatus.CANCELLED:
            log.write(f"\n# errauto: cancelled ({why}); process group killed\n".encode("utf-8", "replace"))
            return CheckResult(check.name, CheckStatus.CANCELLED, code, duration, str(log_path), f"cancelled: {why}")
        log.write(f"\n# errauto: exit code {code} after {duration:.2f}s\n".encode())
    if check.kind == "coverage":
        return _coverage_result(check, cwd, code, duration, log_path)
    if code == 0:
        return CheckResult(check.name, CheckStatus.PASSED, 0, duration, str(log_path), "exit 0")
    return CheckResult(check.name, CheckStatus.FAILED, code, duration, str(log_path), _exit_detail(code))


def _wait(proc: subprocess.Popen[bytes], deadline: float,
          cancel: CancelPoll | None) -> tuple[CheckStatus | None, str]:
    """How the check ended: None (it exited by itself), timeout, or cancelled (and why)."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return CheckStatus.TIMEOUT, ""
        try:
            proc.wait(timeout=min(remaining, POLL))
        except subprocess.TimeoutExpired:
            why = cancel() if cancel is not None else None
            if why is not None:
                return CheckStatus.CANCELLED, why
            continue
        return None, ""


def _poll_event(event: threading.Event) -> CancelPoll:
    return lambda: STOPPING if event.is_set() else None


def kill_running() -> int:
    """SIGKILL the process group of every check running in this process; how many.

    For a daemon exiting while a worker is stuck: its checks must not outlive it.
    """
    with _running_lock:
        groups = list(_running)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(groups)


def _exit_detail(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def _coverage_result(check: CheckConfig, cwd: Path, code: int | None, duration: float,
                     log_path: Path) -> CheckResult:
    if code != 0:
        return CheckResult(check.name, CheckStatus.FAILED, code, duration, str(log_path), _exit_detail(code))
    report = cwd / check.report
    try:
        data = json.loads(report.read_text())
        percent = float(data["totals"]["percent_covered"])
    except (OSError, ValueError, KeyError, TypeError):
        return CheckResult(check.name, CheckStatus.FAILED, code, duration, str(log_path),
                           f"no readable coverage report at {check.report}")
    return CheckResult(check.name, CheckStatus.PASSED, code, duration, str(log_path),
                       f"{percent:.1f}% covered", value=percent)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _kill_leftovers(pgid: int) -> None:
    # The check exited; anything still in its group (a server a test forgot
    # to stop) would keep writing into the worktree while it is cleaned.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
