"""What a check may see and do while it runs the patch's code.

`View` is the part of the file system one check needs beyond the read-only
system: its own worktree (writable), the git objects and git dir that
worktree reads (readable), and what must stay out of its sight whatever the
system mounts show (errauto's state and cache, the user's git dir).

`Sandbox` is how one check is confined: bubblewrap (`bwrap`) gives it new
user, PID, IPC, UTS, cgroup and network namespaces, the system read-only, a
private empty `/tmp` and `HOME`, and the `View`'s paths. Its limits are kept
by the kernel where it can (`RLIMIT_FSIZE`, set on the sandbox's first
process before the check starts) and by `Watch`, which errauto asks each
poll for the sandbox's processes (their number, their summed resident
memory); killing the sandbox's first process ends its PID namespace, and
with it everything the check started.
"""
from __future__ import annotations

import functools
import os
import re
import select
import shutil
import signal
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from errauto_daemon.bwrap import find_bwrap, require, unavailable
from errauto_daemon.config import CheckConfig, Config

__all__ = ["Limits", "Sandbox", "View", "describe", "for_check", "notes", "require", "unavailable"]

MIB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_HOME_FALLBACK = Path("/tmp/home")  # HOME inside the sandbox when the real one cannot be hidden


@dataclass(frozen=True)
class View:
    """The file system one check gets besides the read-only system.

    Applied in this order, each on top of the last: `hidden` paths become
    empty, then `readable` ones are shown read-only, then `writable` ones
    read-write (a worktree inside a hidden cache directory is still shown)."""

    writable: tuple[Path, ...]  # the check's worktree
    readable: tuple[Path, ...] = ()  # the git dir and object directories the worktree reads
    hidden: tuple[Path, ...] = ()  # errauto's state and cache, the user's git dir


@dataclass(frozen=True)
class Limits:
    """What one check may use; over any of them the sandbox is killed."""

    memory_mb: int = 2048  # the summed resident memory of its processes
    max_processes: int = 512  # its processes at once
    max_file_mb: int = 1024  # the largest file it may write (RLIMIT_FSIZE)


@dataclass(frozen=True)
class Sandbox:
    """How one check is confined."""

    bwrap: str  # the bwrap program
    view: View
    home: Path  # the user's home: hidden, and HOME inside is an empty directory there
    readable: tuple[Path, ...] = ()  # what the configuration lists (`sandbox_readable`)
    network: bool = False
    limits: Limits = field(default_factory=Limits)

    def argv(self, command: list[str], cwd: Path, env: Mapping[str, str],
             info_fd: int, block_fd: int) -> list[str]:
        """The bwrap command line that runs `command` (its program resolved) in `cwd`.

        bwrap writes the sandbox's first process id to `info_fd` and waits
        for a byte on `block_fd` before it starts the command, so its limits
        are set before the patch's code runs."""
        args = [self.bwrap, "--unshare-all"]
        if self.network:
            args.append("--share-net")
        args += ["--die-with-parent", "--new-session", "--ro-bind", "/", "/", "--dev", "/dev",
                 "--proc", "/proc", "--tmpfs", "/tmp"]
        home = _real(self.home)
        hideable = home is not None and home != Path("/")
        inside_home = home if hideable and home is not None else _HOME_FALLBACK
        hidden = [*self.view.hidden, *((home,) if hideable and home is not None else ())]
        # What the program needs is shown only where the system mount does not show it already.
        out_of_sight = [Path("/tmp"), *(r for r in map(_real, hidden) if r is not None)]
        writable = [r for r in map(_real, self.view.writable) if r is not None]
        needed: list[Path] = []
        for program in _programs(command):
            needed += runtime_paths(program, env)
            real = _real(Path(program))
            if real is not None and not _under(real, writable):
                needed += python_prefixes(program, env)  # the user's own program: never the patch's
        runtime = [p for p in map(_real, needed)
                   if p is not None and _under(p, out_of_sight) and not _under(p, writable)]
        readable = [*self.view.readable, *self.readable, *runtime]
        for kind, path in _mounts(hidden, readable, self.view.writable, covered=(Path("/tmp"),)):
            args += {"hide": ["--tmpfs", str(path)], "ro": ["--ro-bind", str(path), str(path)],
                     "rw": ["--bind", str(path), str(path)]}[kind]
        if not hideable:
            args += ["--dir", str(_HOME_FALLBACK)]
        # The worktree and /tmp are all a check may write: its temporary files go to /tmp.
        args += ["--setenv", "HOME", str(inside_home), "--setenv", "TMPDIR", "/tmp", "--chdir", str(cwd),
                 "--info-fd", str(info_fd), "--block-fd", str(block_fd), "--", *command]
        return args


def _real(path: Path) -> Path | None:
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _mounts(hidden: Iterable[Path], readable: Iterable[Path], writable: Iterable[Path],
            covered: tuple[Path, ...]) -> list[tuple[str, Path]]:
    """The mounts after the system's, shallow ones first so a deeper one stays on top;
    at the same depth hidden, then read-only, then read-write. Paths that do
    not exist are skipped; hidden ones already under an empty mount too."""
    order = {"hide": 0, "ro": 1, "rw": 2}
    found: dict[Path, str] = {}
    for kind, paths in (("hide", hidden), ("ro", readable), ("rw", writable)):
        for path in paths:
            real = _real(Path(path))
            if real is None or real == Path("/"):
                continue
            if kind == "hide" and (_under(real, covered) or not real.is_dir()):
                continue
            if order[kind] >= order.get(found.get(real, "hide"), 0):
                found[real] = kind
    mounts = sorted(found.items(), key=lambda item: (len(item[0].parts), order[item[1]], str(item[0])))
    return [(kind, path) for path, kind in mounts]


# -- what the check's own program needs ---------------------------------------------

def runtime_paths(program: str, env: Mapping[str, str]) -> list[Path]:
    """The files the check's program needs to start, which may lie under a hidden
    path (a virtualenv under /tmp or in HOME): the program, a script's
    interpreter, a virtualenv (its `pyvenv.cfg`) and the Python it was made from."""
    out: list[Path] = []
    _add_program(Path(program), env, out, depth=0)
    return list(dict.fromkeys(out))


def _add_program(program: Path, env: Mapping[str, str], out: list[Path], depth: int) -> None:
    if depth > 4 or not program.is_absolute():
        return
    real = _real(program)
    if real is None:
        return
    for path in dict.fromkeys((program, real)):
        out.append(path)
        prefix = path.parent.parent if path.parent.name == "bin" else path.parent
        cfg = prefix / "pyvenv.cfg"
        if cfg.is_file():
            out.append(prefix)
            home = _venv_home(cfg)
            if home is not None:
                _add_program(home / "python3", env, out, depth + 1)
        elif path.name.startswith("python") and (prefix / "lib").is_dir() and prefix != Path("/"):
            out.append(prefix)
    interpreter = _shebang(real, env)
    if interpreter is not None:
        _add_program(interpreter, env, out, depth + 1)


def _programs(command: list[str]) -> list[str]:
    """The program a check runs, and every other program its command line names by an
    absolute path (`sh -c '/venv/bin/python -m coverage run ...'`)."""
    out = [command[0]]
    for arg in command[1:]:
        for word in re.split(r"[\s'\"=;&|()]+", arg):
            if word.startswith("/") and word not in out and os.path.isfile(word) and os.access(word, os.X_OK):
                out.append(word)
    return out[:16]


def python_prefixes(program: str, env: Mapping[str, str]) -> list[Path]:
    """Where a Python the check runs by a wrapper's name (`python` as a shell script
    that execs a virtualenv's interpreter, a version manager's shim) really lives:
    asked of the program itself, outside the sandbox, once per program. Only for a
    program named python*, which lies outside the worktree (the caller's part)."""
    if not Path(program).name.startswith("python") or not os.path.isabs(program):
        return []
    try:
        stamp = os.stat(program).st_mtime_ns
    except OSError:
        return []
    return [Path(p) for p in _asked(program, stamp, tuple(sorted(env.items())))]


@functools.lru_cache(maxsize=32)
def _asked(program: str, stamp: int, env: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    code = "import sys; print(sys.prefix); print(sys.base_prefix); print(sys.executable)"
    try:
        done = subprocess.run([program, "-c", code], capture_output=True, timeout=20, stdin=subprocess.DEVNULL,
                              env=dict(env))
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if done.returncode != 0:
        return ()
    lines = done.stdout.decode("utf-8", "replace").splitlines()[:3]
    return tuple(line for line in lines if os.path.isabs(line))


def _venv_home(cfg: Path) -> Path | None:
    try:
        for line in cfg.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                return Path(value.strip())
    except OSError:
        pass
    return None


def _shebang(script: Path, env: Mapping[str, str]) -> Path | None:
    """The interpreter a script names on its first line (through /usr/bin/env too)."""
    try:
        with open(script, "rb") as fh:
            first = fh.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    if not words:
        return None
    if Path(words[0]).name == "env":
        names = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        found = shutil.which(names[0], path=env.get("PATH", os.defpath)) if names else None
        return Path(found) if found else None
    return Path(words[0])


# -- whether there is a sandbox ------------------------------------------------------

def describe(mode: str) -> str:
    """Which sandbox checks run in, for `init` and the notes."""
    if mode == "off":
        return 'none: checks run unsandboxed (sandbox = "off")'
    why = unavailable()
    if why is not None:
        return f"none available: {why}"
    return f"bubblewrap ({find_bwrap()}): no network, private HOME and /tmp, the worktree writable"


# -- the sandbox's processes -----------------------------------------------------------

@dataclass(frozen=True)
class Usage:
    processes: tuple[int, ...]  # below the sandbox's first process
    rss_bytes: int  # their resident memory summed (pages shared between them counted each time)


def _process_table() -> tuple[dict[int, list[int]], dict[int, int]]:
    """Every process's children and resident memory in bytes, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children, rss
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) < 22:
            continue
        pid = int(name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * _PAGE
    return children, rss


def _below(root: int, children: Mapping[int, list[int]]) -> list[int]:
    found: list[int] = []
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, ())
    return found


def usage(root: int) -> Usage:
    """The processes below `root` (the sandbox's first one, not counted), from /proc."""
    children, rss = _process_table()
    found = _below(root, children)
    return Usage(tuple(found), sum(rss.get(pid, 0) for pid in found))


def proportional_memory(pids: Iterable[int]) -> int:
    """The processes' memory with each shared page divided among its sharers (PSS):
    forked workers share most of their pages, and their summed RSS counts them
    again for each. Dearer to read than RSS, so read only when RSS is over."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            continue
    return total


def over_limit(limits: Limits, now: Usage) -> str | None:
    """Why the sandbox must be killed, or None."""
    if len(now.processes) > limits.max_processes:
        return f"killed: process limit {limits.max_processes}"
    cap = limits.memory_mb * MIB
    if now.rss_bytes > cap and proportional_memory(now.processes) > cap:
        return f"killed: memory limit {limits.memory_mb} MiB"
    return None


def signal_all(root: int, signum: int) -> None:
    """Send `signum` to every process below `root` (a polite stop before the kill)."""
    for pid in _below(root, _process_table()[0]):
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def kill_namespace(pidfd: int, wait: float) -> None:
    """SIGKILL the sandbox's first process: the kernel then kills its whole PID
    namespace. Waits (up to `wait` seconds) until it has exited, which it does
    only once every other process of its namespace is gone."""
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass  # it has exited already
    try:
        select.select([pidfd], [], [], wait)
    except (OSError, ValueError):
        pass  # closed meanwhile: its check has ended


def for_check(config: Config, check: CheckConfig, view: View) -> Sandbox | None:
    """The sandbox `check` runs in under `config` (None: `sandbox = "off"`)."""
    if config.sandbox == "off":
        return None
    require(config.sandbox, True, config.source)
    bwrap = find_bwrap()
    assert bwrap is not None  # require() found it
    home = Path(os.path.expanduser("~"))
    readable = tuple(Path(os.path.expanduser(p)) for p in config.sandbox_readable)
    return Sandbox(bwrap, view, home, readable, check.network,
                   Limits(check.memory_mb, check.max_processes, check.max_file_mb))


UNSANDBOXED = 'checks ran unsandboxed (sandbox = "off"): the patch\'s code could read, write and reach ' \
              "what errauto's user can"


def notes(config: Config) -> list[str]:
    """What an explanation says about where the checks ran."""
    if not config.checks:
        return []
    if config.sandbox == "off":
        return [UNSANDBOXED]
    networked = [c.name for c in config.checks if c.network]
    if networked:
        return [f"checks with network access in their sandbox: {', '.join(networked)}"]
    return []
