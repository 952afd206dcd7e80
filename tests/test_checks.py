"""Checks run as real subprocesses: groups, timeouts, scrubbed environment, logs."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from errauto_daemon.checks import check_env, run_check
from errauto_daemon.config import CheckConfig
from tests.helpers.gitrepo import PYTHON

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend


def check(*argv: str, timeout: float = 30, **kw: object) -> CheckConfig:
    return CheckConfig(name=kw.pop("name", "tests"), command=argv, weight=1.0, timeout=timeout, **kw)  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def dies(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_pass_fail_and_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "t.log"
    ok = run_check(check(PYTHON, "-c", "print('hello from the check')"), tmp_path, log, check_env([]))
    assert ok.status == "passed" and ok.exit_code == 0
    text = log.read_text()
    assert "hello from the check" in text and "exit code 0" in text

    bad = run_check(check(PYTHON, "-c", "import sys; sys.exit(3)"), tmp_path, log, check_env([]))
    assert bad.status == "failed" and bad.exit_code == 3 and bad.detail == "exit 3"


def test_missing_tool(tmp_path: Path) -> None:
    result = run_check(check("no-such-linter-xyz", "."), tmp_path, tmp_path / "l.log", check_env([]))
    assert result.status == "missing"
    assert "no-such-linter-xyz: command not found" in result.detail
    assert "command not found" in (tmp_path / "l.log").read_text()


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([{PYTHON!r}, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result = run_check(check(PYTHON, "-c", script, timeout=1.0), tmp_path, tmp_path / "l.log", check_env([]))
    assert result.status == "timeout"
    assert "timed out after 1s" in result.detail
    assert time.monotonic() - started < 10
    assert dies(int(pidfile.read_text()))


def test_leftover_background_process_is_killed_when_check_exits(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    script = (
        "import subprocess\n"
        f"p = subprocess.Popen([{PYTHON!r}, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
    )
    result = run_check(check(PYTHON, "-c", script), tmp_path, tmp_path / "l.log", check_env([]))
    assert result.status == "passed"
    assert dies(int(pidfile.read_text()))


def test_environment_is_scrubbed_of_git_and_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_supersecret_token_value")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example/T000/B000/secret")
    monkeypatch.setenv("MY_DEPLOY_KEY", "deploy-secret")
    monkeypatch.setenv("GIT_DIR", "/somewhere/else/.git")
    monkeypatch.setenv("GIT_INDEX_FILE", "/somewhere/else/index")
    monkeypatch.setenv("KEEP_ME", "visible")
    out = tmp_path / "env.json"
    script = f"import json, os; json.dump(dict(os.environ), open({str(out)!r}, 'w'))"
    env = check_env(["GITHUB_TOKEN", "SLACK_WEBHOOK_URL", "MY_DEPLOY_KEY"], {"EXTRA": "1"})
    result = run_check(check(PYTHON, "-c", script), tmp_path, tmp_path / "l.log", env)
    assert result.status == "passed"
    seen = json.loads(out.read_text())
    assert not [k for k in seen if k.startswith("GIT_")]
    for name in ("GITHUB_TOKEN", "SLACK_WEBHOOK_URL", "MY_DEPLOY_KEY"):
        assert name not in seen
    assert "supersecret" not in out.read_text() and "deploy-secret" not in out.read_text()
    assert seen["KEEP_ME"] == "visible" and seen["EXTRA"] == "1"


def test_coverage_check_reads_its_report(tmp_path: Path) -> None:
    script = ("import json; json.dump({'totals': {'percent_covered': 87.5}}, open('coverage.json', 'w'))")
    cov = check(PYTHON, "-c", script, name="coverage", kind="coverage")
    result = run_check(cov, tmp_path, tmp_path / "l.log", check_env([]))
    assert result.status == "passed" and result.value == 87.5
    missing = run_check(check(PYTHON, "-c", "pass", name="coverage", kind="coverage", report="nope.json"),
                        tmp_path, tmp_path / "l2.log", check_env([]))
    assert missing.status == "failed" and "nope.json" in missing.detail


def test_cancel_stops_a_running_check(tmp_path: Path) -> None:
    import threading

    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    try:
        result = run_check(check(PYTHON, "-c", "import time; time.sleep(30)"), tmp_path,
                           tmp_path / "l.log", check_env([]), cancel)
    finally:
        timer.cancel()
        timer.join()
    assert result.status == "cancelled"
    assert result.duration < 10
