"""A real `errauto web` on 127.0.0.1 for tests and benches: started on any free port, the URL it
printed (token included) read from its first line, stopped as a service manager would."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping

URL = re.compile(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+")


def start(env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "errauto_daemon", "web", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ if env is None else env))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = URL.search(line)
    if found is None:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"errauto web did not start: {line!r} {err}")
    return proc, found[0]


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, as systemd stops it; SIGKILL if it has not ended within 30 s."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
