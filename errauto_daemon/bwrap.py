"""Whether this machine can give checks a sandbox: bubblewrap (`bwrap`) on
`PATH`, able to create namespaces here (probed once per process with a tiny
run). A leaf: the configuration asks it whether a configuration that wants a
sandbox can be used.
"""
from __future__ import annotations

import functools
import shutil
import subprocess
import sys

from errauto_daemon.errors import ConfigError

OFF_HINT = 'or set sandbox = "off" in .errauto.toml to run checks unsandboxed'


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=4)
def _probe(bwrap: str) -> str | None:
    """Why `bwrap` cannot make a sandbox here, or None; a tiny run, once per process."""
    true = shutil.which("true") or "/bin/true"
    try:
        done = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--new-session",
                               "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                               "--tmpfs", "/tmp", "--", true],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else f"exit {done.returncode}"
    return None


def unavailable() -> str | None:
    """What is missing for errauto's sandbox on this machine, with how to fix it; None: it works."""
    if not sys.platform.startswith("linux"):
        return (f"checks run in a sandbox, and errauto's sandbox (bubblewrap) needs Linux, not {sys.platform}; "
                f"run errauto on Linux, {OFF_HINT}")
    bwrap = find_bwrap()
    if bwrap is None:
        return ("checks run in a sandbox, and bwrap (bubblewrap) was not found on PATH; install it with the "
                "distribution's package manager (apt-get install bubblewrap, dnf install bubblewrap, "
                f"pacman -S bubblewrap), {OFF_HINT}")
    why = _probe(bwrap)
    if why is not None:
        return (f"checks run in a sandbox, and {bwrap} cannot create one here ({why}); allow unprivileged "
                "user namespaces (sysctl kernel.unprivileged_userns_clone=1, or the AppArmor profile for bwrap), "
                f"{OFF_HINT}")
    return None


def require(mode: str, has_checks: bool, source: str) -> None:
    """Raise the configuration error when checks would run and no sandbox can be had."""
    if mode == "off" or not has_checks:
        return
    why = unavailable()
    if why is not None:
        raise ConfigError(f"config error in {source}: sandbox: {why}")
