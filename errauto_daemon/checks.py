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
  times a second): then its whole process group is killed;
- given a `Sandbox`, inside it (bubblewrap): its own PID namespace, so
  whatever it started dies with it, on every way out; its limits watched
  each poll, and a check over one fails with that reason.

Every running check is known here (`kill_running`), so a daemon that must
exit while a worker is stuck can still kill them all.
"""
from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from errauto_daemon import paths
from errauto_daemon.config import CheckConfig
from errauto_daemon.domain import CheckStatus
from errauto_daemon.errors import STOPPING, FatalError
from errauto_daemon.sandbox import Sandbox, kill_namespace, over_limit, signal_all, usage

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
POLL = 0.1  # seconds between looks at the check and at `cancel`

# Why a running check should stop (a person's reject, errauto stopping), or None.
CancelPoll = Callable[[], "str | None"]

INFO_WAIT = 30.0  # seconds bwrap may take to set the sandbox up

# How to kill each check running now (by its process id): its process group,
# and its sandbox's PID namespace.
_running: dict[int, Callable[[], None]] = {}
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


# libpq's ways to a password and a server: errauto's database is not the checks' business.
_DATABASE_ENV = frozenset({"PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE"})


def check_env(secrets: Iterable[str], extra: Mapping[str, str] | None = None,
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    secret_names = set(secrets)
    for key in list(env):
        if key.startswith("GIT_") or key in secret_names or key.startswith("ERRAUTO_") or key in _DATABASE_ENV:
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
    sandbox: Sandbox | None = None,
) -> CheckResult:
    """Run `check` in `cwd`; `cancel`: why to stop it early (an Event: errauto is stopping);
    `sandbox`: how to confine it (None: unsandboxed)."""
    if isinstance(cancel, threading.Event):
        cancel = _poll_event(cancel)
    paths.private_dir(log_path.parent)  # a submission's logs: what the patch's code printed
    start = time.monotonic()
    executable = resolve_executable(check.command[0], cwd, env)
    with _open_log(log_path) as log:
        log.write(f"$ {' '.join(check.command)}\n# in {cwd}\n# {_confinement(sandbox)}\n"
                  .encode("utf-8", "replace"))
        log.flush()
        if executable is None:
            message = f"{check.command[0]}: command not found"
            log.write(message.encode() + b"\n")
            return CheckResult(check.name, CheckStatus.MISSING, None, 0.0, str(log_path), message)
        argv = [executable, *check.command[1:]]
        try:
            running = _start(argv, cwd, env, log, sandbox)
        except OSError as exc:
            message = f"{check.command[0]}: cannot run ({exc.strerror})"
            log.write(message.encode() + b"\n")
            return CheckResult(check.name, CheckStatus.MISSING, None, 0.0, str(log_path), message)
        proc = running.proc
        with _running_lock:
            _running[proc.pid] = running.kill
        try:
            status, why = _wait(running, start + check.timeout, cancel)
            if status is not None:
                running.stop()
            else:
                running.kill()
            proc.wait()
        finally:
            with _running_lock:
                _running.pop(proc.pid, None)
            running.close()
        duration = time.monotonic() - start
        code = proc.returncode
        if status == CheckStatus.TIMEOUT:
            detail = f"timed out after {check.timeout:g}s"
            log.write(f"\n# errauto: {detail}; process group killed\n".encode())
            return CheckResult(check.name, CheckStatus.TIMEOUT, code, duration, str(log_path), detail)
        if status == CheckStatus.CANCELLED:
            log.write(f"\n# errauto: cancelled ({why}); process group killed\n".encode("utf-8", "replace"))
            return CheckResult(check.name, CheckStatus.CANCELLED, code, duration, str(log_path), f"cancelled: {why}")
        if status == CheckStatus.FAILED:
            log.write(f"\n# errauto: {why}; sandbox killed\n".encode())
            return CheckResult(check.name, CheckStatus.FAILED, code, duration, str(log_path), why)
        log.write(f"\n# errauto: exit code {code} after {duration:.2f}s\n".encode())
    if check.kind == "coverage":
        return _coverage_result(check, cwd, code, duration, log_path, sandbox)
    if code == 0:
        return CheckResult(check.name, CheckStatus.PASSED, 0, duration, str(log_path), "exit 0")
    return CheckResult(check.name, CheckStatus.FAILED, code, duration, str(log_path),
                       _exit_detail(code, sandbox))


def _confinement(sandbox: Sandbox | None) -> str:
    if sandbox is None:
        return "unsandboxed"
    limits = sandbox.limits
    return (f"sandbox: bubblewrap, network {'on' if sandbox.network else 'off'}, memory {limits.memory_mb} MiB, "
            f"{limits.max_processes} processes, files up to {limits.max_file_mb} MiB")


def _open_log(path: Path) -> BinaryIO:
    """The check's log, readable by the user alone: it may hold what the patch's code printed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


class _Running:
    """A started check: its process, and for a sandbox its first process (a pidfd) and limits."""

    def __init__(self, proc: subprocess.Popen[bytes], sandbox: Sandbox | None = None,
                 init_pid: int | None = None, pidfd: int | None = None) -> None:
        self.proc = proc
        self.sandbox = sandbox
        self.init_pid = init_pid
        self.pidfd = pidfd

    def over_limit(self) -> str | None:
        if self.sandbox is None or self.init_pid is None:
            return None
        return over_limit(self.sandbox.limits, usage(self.init_pid))

    def stop(self) -> None:
        """Ask everything it started to stop, give it `KILL_GRACE`, then kill it."""
        if self.init_pid is not None:
            signal_all(self.init_pid, signal.SIGTERM)
        else:
            _signal_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL all of it: the sandbox's PID namespace, and the process group."""
        if self.pidfd is not None:
            kill_namespace(self.pidfd, KILL_GRACE)
        # The check exited; anything still in its group (a server a test forgot
        # to stop) would keep writing into the worktree while it is cleaned.
        _signal_group(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _start(argv: list[str], cwd: Path, env: Mapping[str, str], log: BinaryIO,
           sandbox: Sandbox | None) -> _Running:
    if sandbox is None:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        return _Running(proc)
    info_r, info_w = os.pipe()
    block_r, block_w = os.pipe()
    try:
        proc = subprocess.Popen(sandbox.argv(argv, cwd, env, info_w, block_r), cwd=cwd, env=dict(env),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, pass_fds=(info_w, block_r))
    except OSError:
        for fd in (info_r, info_w, block_r, block_w):
            os.close(fd)
        raise
    os.close(info_w)
    os.close(block_r)
    try:
        init_pid = _read_init_pid(info_r)
        if init_pid is None:
            if proc.poll() is None:  # bwrap is stuck setting the sandbox up
                _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            log.flush()
            raise FatalError(f"the sandbox did not start (bwrap exit {proc.returncode}): "
                             f"{_last_line(log.name)}")
        pidfd = os.pidfd_open(init_pid)
        try:
            _limit(init_pid, sandbox)
        except OSError:
            os.close(pidfd)
            raise
        running = _Running(proc, sandbox, init_pid, pidfd)
        with _running_lock:  # killable (kill_running) before the patch's code runs, not after
            _running[proc.pid] = running.kill
        os.write(block_w, b"1")
    except BaseException:
        with _running_lock:
            _running.pop(proc.pid, None)
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        os.close(info_r)
        os.close(block_w)
    return running


def _read_init_pid(fd: int) -> int | None:
    """The sandbox's first process, from bwrap's JSON on its info pipe (None: it failed)."""
    data = b""
    deadline = time.monotonic() + INFO_WAIT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
        try:
            pid = json.loads(data)["child-pid"]
        except (ValueError, KeyError, TypeError):
            continue
        return int(pid)
    return None


def _limit(pid: int, sandbox: Sandbox) -> None:
    """The kernel's own limits, on the sandbox's first process before the check starts
    (everything it starts inherits them): file size, and no core dumps."""
    size = sandbox.limits.max_file_mb * 1024 * 1024
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (size, size))
    resource.prlimit(pid, resource.RLIMIT_CORE, (0, 0))


def _last_line(path: str | int) -> str:
    try:
        with open(path, "rb") as fh:
            lines = fh.read()[-4096:].decode("utf-8", "replace").strip().splitlines()
    except (OSError, TypeError):
        return "no message"
    return lines[-1] if lines else "no message"


def _wait(running: _Running, deadline: float,
          cancel: CancelPoll | None) -> tuple[CheckStatus | None, str]:
    """How the check ended: None (it exited by itself), timeout, cancelled, or
    failed over a limit of its sandbox (and why)."""
    proc = running.proc
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return CheckStatus.TIMEOUT, ""
        try:
            proc.wait(timeout=min(remaining, POLL))
        except subprocess.TimeoutExpired:
            over = running.over_limit()
            if over is not None:
                return CheckStatus.FAILED, over
            why = cancel() if cancel is not None else None
            if why is not None:
                return CheckStatus.CANCELLED, why
            continue
        return None, ""


def _poll_event(event: threading.Event) -> CancelPoll:
    return lambda: STOPPING if event.is_set() else None


def kill_running() -> int:
    """SIGKILL every check running in this process (its sandbox, its process group); how many.

    For a daemon exiting while a worker is stuck: its checks must not outlive it.
    """
    with _running_lock:
        kills = list(_running.values())
    for kill in kills:
        kill()
    return len(kills)


def _exit_detail(code: int | None, sandbox: Sandbox | None = None) -> str:
    if sandbox is not None and code == 128 + signal.SIGXFSZ:
        # bwrap reports a command a signal killed as 128 + the signal.
        return f"killed: file size limit {sandbox.limits.max_file_mb} MiB"
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def _coverage_result(check: CheckConfig, cwd: Path, code: int | None, duration: float,
                     log_path: Path, sandbox: Sandbox | None) -> CheckResult:
    if code != 0:
        return CheckResult(check.name, CheckStatus.FAILED, code, duration, str(log_path),
                           _exit_detail(code, sandbox))
    report = cwd / check.report
    try:
        data = json.loads(report.read_text())
        percent = float(data["totals"]["percent_covered"])
    except (OSError, ValueError, KeyError, TypeError):
        return CheckResult(check.name, CheckStatus.FAILED, code, duration, str(log_path),
                           f"no readable coverage report at {check.report}")
    return CheckResult(check.name, CheckStatus.PASSED, code, duration, str(log_path),
                       f"{percent:.1f}% covered", value=percent)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass
