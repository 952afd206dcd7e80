"""Checks run in a sandbox: hostile test suites in real patches, through `errauto apply`.

Each patch adds a test file to the project that tries to get out: read the
user's keys or the daemon's secrets, reach a server on loopback, write where
it should not, read errauto's state or another slot, leave a process
running, or exhaust the machine. The CLI runs as a real subprocess (so its
environment, which /proc shows, holds real secrets) and the checks in real
bubblewrap.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import threading
import uuid
import venv
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from errauto_daemon import checks, paths
from errauto_daemon.config import CheckConfig
from errauto_daemon.github import body
from errauto_daemon.sandbox import Sandbox, View
from errauto_daemon.store import Store
from errauto_daemon.workspace import Pool
from tests.helpers.daemon import wait_until
from tests.helpers.gitrepo import PYTHON, GitRepo, config_toml, python_project

TOKEN = "ghp_SANDBOXSECRETTOKEN0123456789"
DB_PASSWORD = "db-password-never-in-a-check"
KEY = "-----BEGIN OPENSSH PRIVATE KEY----- sentinel-key-material"

def project_with(tmp_path: Path, *, top: str = "", check: str = "") -> GitRepo:
    """The calc project with one check, its tests; `check`: more keys of that check."""
    config = config_toml(lint=False, top=f'secret_env = ["DB_PASSWORD"]\n{top}', extra=check)
    return python_project(tmp_path / "project", config=config)


def hostile(repo: GitRepo, body_: str) -> bytes:
    """A patch that fixes add() and adds a test whose body is `body_` (indented 8)."""
    test = ("import glob, os, socket, subprocess, sys, time, unittest\n\n\n"
            "class Hostile(unittest.TestCase):\n    def test_it(self):\n"
            + "".join(f"        {line}\n" for line in body_.strip("\n").splitlines()))
    return repo.make_patch({"calc.py": repo.read("calc.py").replace("a - b", "a + b"),
                            "tests/test_hostile.py": test})


def steal(key: Path) -> str:
    """A test body that prints the key at `key` and in ~/.ssh, and every process's environment it can read."""
    return f"""
for path in [{str(key)!r}, os.path.expanduser("~/.ssh/id_rsa")]:
    try:
        print("KEY", open(path).read())
    except OSError as exc:
        print("no key:", exc)
for path in ["/proc/%d/environ" % os.getppid()] + glob.glob("/proc/*/environ"):
    try:
        print("ENV", path, open(path, "rb").read().decode("latin-1"))
    except OSError:
        pass
"""


def apply(tmp_path: Path, repo: GitRepo, patch: bytes, *, env: dict[str, str] | None = None
          ) -> tuple[int, dict[str, object], str]:
    """`errauto apply --json` as a subprocess whose environment holds the secrets."""
    path = tmp_path / f"{uuid.uuid4().hex[:8]}.patch"
    path.write_bytes(patch)
    full = {**os.environ, "GITHUB_TOKEN": TOKEN, "DB_PASSWORD": DB_PASSWORD, **(env or {})}
    done = subprocess.run([PYTHON, "-m", "errauto_daemon", "apply", str(path), "--repo", str(repo.path), "--json"],
                          env=full, capture_output=True, text=True, timeout=300)
    try:
        result = json.loads(done.stdout)
    except ValueError:
        result = {}
    return done.returncode, result, done.stdout + done.stderr


def logs() -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(paths.check_logs_dir().rglob("*.log")))


def parts(result: dict[str, object]) -> dict[str, dict[str, object]]:
    explanation = result["explanation"]
    assert isinstance(explanation, dict)
    return {p["check"]: p for p in explanation["parts"]}


def test_a_test_cannot_read_keys_in_home_nor_secrets_in_any_process_environment(tmp_path: Path) -> None:
    key = Path.home() / ".ssh" / "id_rsa"
    key.parent.mkdir()
    key.write_text(KEY)
    repo = project_with(tmp_path)
    patch = hostile(repo, steal(key))
    code, result, out = apply(tmp_path, repo, patch)
    assert code == 0 and result["state"] == "merged", out
    seen = logs()
    assert "no key:" in seen and "ENV /proc/" in seen  # the test did run, and looked
    assert "sentinel-key-material" not in seen
    assert TOKEN not in seen and DB_PASSWORD not in seen


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on 127.0.0.1: its port, and what it received."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    received.append(conn.recv(1024))
                except OSError:
                    pass

    thread = threading.Thread(target=serve, name="listener")
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join(5)
    server.close()


CONNECT = """
try:
    with socket.create_connection(("127.0.0.1", {port}), timeout=5) as s:
        s.sendall(b"EXFILTRATED")
    print("connected")
except OSError as exc:
    print("no network:", exc)
"""


def test_a_test_cannot_reach_a_loopback_server(tmp_path: Path, listener: tuple[int, list[bytes]]) -> None:
    port, received = listener
    repo = project_with(tmp_path)
    code, result, out = apply(tmp_path, repo, hostile(repo, CONNECT.format(port=port)))
    assert code == 0 and result["state"] == "merged", out
    assert "no network:" in logs()
    assert received == []
    assert "network" not in " ".join(result["explanation"]["notes"])  # type: ignore[index]


def test_a_check_with_network_true_reaches_it_and_the_explanation_says_so(
        tmp_path: Path, listener: tuple[int, list[bytes]]) -> None:
    port, received = listener
    repo = project_with(tmp_path, check="network = true\n")
    code, result, out = apply(tmp_path, repo, hostile(repo, CONNECT.format(port=port)))
    assert code == 0 and result["state"] == "merged", out
    assert received == [b"EXFILTRATED"]
    assert "checks with network access in their sandbox: tests" in result["explanation"]["notes"]  # type: ignore[index]


def test_writes_outside_the_worktree_do_not_appear(tmp_path: Path) -> None:
    repo = project_with(tmp_path)
    marker = f"/tmp/errauto-escaped-{uuid.uuid4().hex}"
    state = paths.state_dir() / "planted"
    git_dir = repo.path / ".git"
    config_before = (git_dir / "config").read_text()
    patch = hostile(repo, f"""
for path in [{marker!r}, {str(state)!r}, {str(git_dir / "hooks" / "post-commit")!r}]:
    try:
        with open(path, "w") as fh:
            fh.write("#!/bin/sh\\necho planted\\n")
        print("wrote", path)
    except OSError as exc:
        print("cannot write:", exc)
try:
    with open({str(git_dir / "config")!r}, "a") as fh:
        fh.write("[core]\\n\\thooksPath = /tmp\\n")
except OSError as exc:
    print("cannot write:", exc)
subprocess.run(["git", "update-ref", "refs/heads/planted", "HEAD"])
""")
    code, result, out = apply(tmp_path, repo, patch)
    assert code == 0 and result["state"] == "merged", out
    assert "cannot write:" in logs()
    assert not Path(marker).exists()
    assert not state.exists()
    assert not (git_dir / "hooks" / "post-commit").exists()
    assert (git_dir / "config").read_text() == config_before
    assert "planted" not in repo.git("for-each-ref", "--format=%(refname)")


def test_a_test_cannot_read_the_state_database_nor_another_slots_worktree(tmp_path: Path) -> None:
    repo = project_with(tmp_path)
    Store().close()  # the database exists before the check runs
    git_repo = pygit2.Repository(str(repo.path))
    tip = git_repo.head.peel(pygit2.Commit)
    with Pool(git_repo).acquire(tip) as other:  # held: the validation takes another slot
        (other.path / "other-slot-secret.txt").write_text("OTHER-SLOT-CONTENT")
        patch = hostile(repo, f"""
try:
    print("DB", open({str(paths.db_path())!r}, "rb").read(64))
except OSError as exc:
    print("no database:", exc)
for path in glob.glob({str(paths.cache_dir())!r} + "/**/other-slot-secret.txt", recursive=True):
    print("SLOT", open(path).read())
print("own worktree:", sorted(os.listdir(".")))
""")
        code, result, out = apply(tmp_path, repo, patch)
    assert code == 0 and result["state"] == "merged", out
    seen = logs()
    assert "no database:" in seen and "own worktree:" in seen
    assert "SQLite format 3" not in seen
    assert "OTHER-SLOT-CONTENT" not in seen


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_setsid_double_forked_sleeper_is_gone_when_the_check_returns(tmp_path: Path) -> None:
    marker = f"sleeper-{uuid.uuid4().hex}"
    repo = project_with(tmp_path)
    patch = hostile(repo, f"""
code = "import os, sys, time\\nif os.fork():\\n    sys.exit()\\ntime.sleep(300)"
subprocess.Popen(["setsid", sys.executable, "-c", code, {marker!r}])
time.sleep(0.5)
""")
    try:
        code, result, out = apply(tmp_path, repo, patch)
        assert code == 0 and result["state"] == "merged", out
        assert _processes_with(marker) == []
    finally:
        for pid in _processes_with(marker):
            os.kill(pid, 9)


BOMB = """
for i in range(400):
    if os.fork() == 0:
        time.sleep(20)
        os._exit(0)
time.sleep(20)
"""


HOG = """
hoard = []
for i in range(150):
    hoard.append(b"x" * (10 << 20))
    time.sleep(0.02)
time.sleep(20)
"""


@pytest.mark.parametrize("body, limit, detail", [
    (BOMB, "max_processes = 40", "killed: process limit 40"),
    (HOG, "memory_mb = 100", "killed: memory limit 100 MiB"),
], ids=["fork-bomb", "memory-hog"])
def test_a_check_over_a_limit_fails_with_that_limit(tmp_path: Path, body: str, limit: str, detail: str) -> None:
    repo = project_with(tmp_path, check=f"{limit}\ntimeout = 15\n")
    code, result, out = apply(tmp_path, repo, hostile(repo, body))
    assert code == 1 and result["state"] == "awaiting_review", out
    tests = parts(result)["tests"]
    assert tests["status"] == "failed" and tests["detail"] == detail


PYTEST_PACKAGES = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py")


def _venv_with_pytest(where: Path) -> Path:
    """A virtualenv (under /tmp, which the sandbox replaces) with pytest in it."""
    venv.create(where, with_pip=False)
    site = next(where.glob("lib/python*/site-packages"))
    for name in PYTEST_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, site / name)
        else:
            shutil.copy2(origin, site / origin.name)
    return where


def test_an_ordinary_pytest_project_with_a_virtualenv_passes_in_the_sandbox(tmp_path: Path) -> None:
    env_dir = _venv_with_pytest(tmp_path / "venv")
    config = 'target = "main"\n[checks.tests]\ncommand = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"]\n'
    repo = GitRepo(tmp_path / "project")
    repo.commit("project", {"calc.py": "def add(a, b):\n    return a - b\n",
                            "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
                            ".errauto.toml": config})
    patch = repo.make_patch({"calc.py": "def add(a, b):\n    return a + b\n"})
    path = f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}"
    code, result, out = apply(tmp_path, repo, patch, env={"PATH": path, "VIRTUAL_ENV": str(env_dir)})
    assert code == 0 and result["state"] == "merged", out
    seen = logs()
    assert "1 passed" in seen
    assert "# sandbox: bubblewrap, network off" in seen


@pytest.mark.parametrize("how", ["wrapper", "shell"])
def test_a_virtualenv_reached_through_a_wrapper_or_a_shell_line_is_shown_to_the_check(
        tmp_path: Path, how: str) -> None:
    # Both lie under /tmp, which the sandbox replaces: the wrapper (a `python` shell
    # script that execs the virtualenv's interpreter, as a version manager's shim does)
    # and the virtualenv named only inside a shell line.
    env_dir = _venv_with_pytest(tmp_path / "venv")
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    (wrappers / "python").write_text(f'#!/bin/sh\nexec "{env_dir}/bin/python" "$@"\n')
    (wrappers / "python").chmod(0o755)
    command = ('["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"]' if how == "wrapper" else
               f'["sh", "-c", "cd . && {env_dir}/bin/python -m pytest -q -p no:cacheprovider"]')
    repo = GitRepo(tmp_path / "project")
    repo.commit("project", {"calc.py": "def add(a, b):\n    return a - b\n",
                            "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
                            ".errauto.toml": f'target = "main"\n[checks.tests]\ncommand = {command}\n'})
    patch = repo.make_patch({"calc.py": "def add(a, b):\n    return a + b\n"})
    code, result, out = apply(tmp_path, repo, patch, env={"PATH": f"{wrappers}{os.pathsep}/usr/bin:/bin"})
    assert code == 0 and result["state"] == "merged", out + logs()
    assert "1 passed" in logs()


def test_without_bwrap_on_path_checks_do_not_run_and_the_configuration_error_says_how_to_fix_it(
        tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("git",):
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    repo = project_with(tmp_path)
    base = repo.head()
    code, result, out = apply(tmp_path, repo, hostile(repo, "pass"), env={"PATH": str(tools)})
    assert code == 5, out
    assert "bwrap (bubblewrap) was not found on PATH" in out
    assert "apt-get install bubblewrap" in out and 'sandbox = "off"' in out
    assert repo.head() == base


def test_sandbox_off_says_unsandboxed_in_the_explanation_queue_show_pr_body_and_status(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from errauto_daemon.main import main

    repo = project_with(tmp_path, top='sandbox = "off"\n')
    code, result, out = apply(tmp_path, repo, hostile(repo, "pass"))
    assert code == 0 and result["state"] == "merged", out
    unsandboxed = 'checks ran unsandboxed (sandbox = "off")'
    assert any(note.startswith(unsandboxed) for note in result["explanation"]["notes"])  # type: ignore[index]
    assert "# unsandboxed" in logs()
    assert main(["queue", "show", str(result["id"])]) == 0
    assert unsandboxed in capsys.readouterr().out
    assert main(["status"]) == 0
    assert f"checks run unsandboxed in {repo.path}" in capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unsandboxed"] == [str(repo.path)]
    store = Store()
    sub = store.get(int(str(result["id"])))
    store.close()
    assert sub.explanation is not None
    assert unsandboxed in body.pull_request_body(sub, sub.explanation, [], merged_by=body.BY_AUTO_MERGE)


def test_check_logs_are_readable_by_the_user_alone(tmp_path: Path) -> None:
    repo = project_with(tmp_path)
    code, result, out = apply(tmp_path, repo, hostile(repo, "pass"))
    assert code == 0, out
    found = list(paths.check_logs_dir().rglob("*.log"))
    assert found and all(p.stat().st_mode & 0o777 == 0o600 for p in found)


ESCAPING = ("import os, subprocess, sys, time\n"
            "code = 'import os, sys, time\\nif os.fork():\\n    sys.exit()\\ntime.sleep(300)'\n"
            "subprocess.Popen(['setsid', sys.executable, '-c', code, sys.argv[1]])\n"
            "time.sleep(300)\n")


@pytest.mark.parametrize("how", ["timeout", "cancel", "kill_running"])
def test_a_sandboxed_check_and_what_escaped_its_session_die_on_timeout_cancel_and_kill_running(
        tmp_path: Path, how: str) -> None:
    marker = f"escaping-{uuid.uuid4().hex}"
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    confined = Sandbox(bwrap, View(writable=(worktree,)), Path.home())
    check = CheckConfig(name="tests", command=(PYTHON, "-c", ESCAPING, marker), weight=1.0,
                        timeout=2.0 if how == "timeout" else 120.0)

    def started() -> bool:
        return len(_processes_with(marker)) >= 2  # the check and its escaped grandchild

    cancel = None
    killer = None
    if how == "cancel":
        cancel = lambda: "withdrawn" if started() else None  # noqa: E731
    elif how == "kill_running":
        def kill_when_started() -> None:
            wait_until(started, what="the check and its grandchild")
            checks.kill_running()
        killer = threading.Thread(target=kill_when_started)
        killer.start()
    try:
        result = checks.run_check(check, worktree, tmp_path / "check.log", checks.check_env([]), cancel, confined)
        assert _processes_with(marker) == []
    finally:
        if killer is not None:
            killer.join(60)
        for pid in _processes_with(marker):
            os.kill(pid, 9)
    expected = {"timeout": "timeout", "cancel": "cancelled", "kill_running": "failed"}[how]
    assert result.status == expected, result


def test_sandbox_readable_shows_what_it_lists_from_home_and_nothing_else(tmp_path: Path) -> None:
    shown = Path.home() / ".toolchain" / "version.txt"
    shown.parent.mkdir()
    shown.write_text("TOOLCHAIN-1.2")
    (Path.home() / ".netrc").write_text("machine example.com password NETRC-SECRET")
    repo = project_with(tmp_path, top='sandbox_readable = ["~/.toolchain"]\n')
    patch = hostile(repo, f"""
for path in [{str(shown)!r}, {str(Path.home() / ".netrc")!r}]:
    try:
        print("READ", open(path).read())
    except OSError as exc:
        print("cannot read:", exc)
""")
    code, result, out = apply(tmp_path, repo, patch)
    assert code == 0 and result["state"] == "merged", out
    seen = logs()
    assert "READ TOOLCHAIN-1.2" in seen
    assert "NETRC-SECRET" not in seen and "cannot read:" in seen


@pytest.mark.parametrize("with_bwrap", [True, False])
def test_init_says_which_sandbox_the_checks_run_in(tmp_path: Path, with_bwrap: bool) -> None:
    repo = GitRepo(tmp_path / "proj")
    repo.commit("init", {"README": "hello\n"})
    env = dict(os.environ)
    if not with_bwrap:
        tools = tmp_path / "tools"
        tools.mkdir()
        (tools / "git").symlink_to(str(shutil.which("git")))
        env["PATH"] = str(tools)
    done = subprocess.run([PYTHON, "-m", "errauto_daemon", "init", "--repo", str(repo.path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    if with_bwrap:
        assert "sandbox for checks: bubblewrap (" in done.stdout
    else:
        assert "sandbox for checks: none available: " in done.stdout
        assert "bwrap (bubblewrap) was not found on PATH" in done.stdout
        assert "not run: no sandbox to run them in" in done.stdout
