"""`errauto daemon run / start / stop / status / install-service`."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import sysconfig
import time
from argparse import Namespace
from pathlib import Path
from urllib.parse import urlsplit

from errauto_daemon import output, paths
from errauto_daemon.daemon import Daemon, daemon_status
from errauto_daemon.daemon.control import worker_lines
from errauto_daemon.errors import FatalError
from errauto_daemon.presence import running_pid
from errauto_daemon.store import Store


def run(*, workers: int | None, grace: float, rescan: float, verbose: bool, ready_fd: int | None) -> int:
    return Daemon(workers=workers, grace=grace, rescan=rescan, verbose=verbose, ready_fd=ready_fd).run()


def start(*, workers: int | None, grace: float, verbose: bool, rescan: float = 30.0,
          as_json: bool = False, timeout: float = 60.0) -> int:
    log_path = paths.log_dir() / "daemon.log"
    pid = running_pid()
    if pid is not None:
        print(output.dumps({"pid": pid, "started": False, "log": str(log_path)}) if as_json
              else f"errauto daemon already running (pid {pid})")
        return 0
    read_end, write_end = os.pipe()
    args = [sys.executable, "-m", "errauto_daemon", "daemon", "run", "--ready-fd", str(write_end),
            "--grace", str(grace), "--rescan", str(rescan)]
    if workers:
        args += ["--workers", str(workers)]
    if verbose:
        args.append("--verbose")
    stderr_log = paths.log_dir() / "daemon.stderr"
    with open(stderr_log, "ab") as err, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(args, stdin=devnull, stdout=err, stderr=err, pass_fds=(write_end,),
                                start_new_session=True, close_fds=True, env=paths.child_env())
    os.close(write_end)
    message = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in message and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.2)
            if ready:
                chunk = os.read(read_end, 4096)
                if not chunk:
                    break  # the daemon closed the pipe without a word: it died
                message += chunk
    finally:
        os.close(read_end)
    text = message.decode(errors="replace").strip()
    if text == "ready":
        print(output.dumps({"pid": proc.pid, "started": True, "log": str(log_path)}) if as_json
              else f"errauto daemon started (pid {proc.pid}); log: {log_path}")
        return 0
    if proc.poll() is None and not text:
        raise FatalError(f"the daemon did not report ready within {timeout:g}s (pid {proc.pid}); "
                         f"see {paths.log_dir() / 'daemon.log'}")
    reason = text.removeprefix("error: ") if text else f"it exited with code {proc.wait()}"
    raise FatalError(f"the daemon did not start: {reason} (see {stderr_log})")


def stop(*, as_json: bool = False, timeout: float = 90.0) -> int:
    pid = running_pid()
    if pid is None:
        print(output.dumps({"pid": None, "stopped": False}) if as_json else "errauto daemon is not running")
        return 0
    if pid <= 0:
        raise FatalError("a daemon holds the lock but its pid is unknown; stop it with your service manager")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid() is None:
            print(output.dumps({"pid": pid, "stopped": True}) if as_json else f"errauto daemon stopped (pid {pid})")
            return 0
        time.sleep(0.1)
    raise FatalError(f"the daemon (pid {pid}) did not stop within {timeout:g}s")


def status(*, as_json: bool) -> int:
    info = daemon_status()
    if as_json:
        print(output.dumps(info))
        return 0 if info["running"] else 1
    if not info["running"]:
        print("errauto daemon is not running")
    else:
        health = "alive" if info["alive"] else f"no heartbeat for {info['heartbeat_age']}s"
        print(f"errauto daemon running: pid {info['pid']}, up {output.age(info['uptime'] or 0)}, {health}")
    print(f"watching {len(info['repos'])} repositories" + (":" if info["repos"] else ""))
    for repo in info["repos"]:
        print(f"  {repo}")
    for line in worker_lines(info["workers"]):
        print(output.printable(line))
    print(f"queue: {info['queued']} waiting, {len(info['in_flight'])} being validated")
    for item in info["in_flight"]:
        rejecting = ", being rejected" if item["being_rejected"] else ""
        print(f"  #{item['id']} {output.shorten(item['title'], 50)} ({output.age(item['since'])}{rejecting})")
    return 0 if info["running"] else 1


UNIT = """\
[Unit]
Description=errauto: validate and route candidate fix patches

[Service]
Type=notify
ExecStart={python} -m errauto_daemon daemon run
{environment}Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=90

[Install]
WantedBy=default.target
"""


def service_path() -> str:
    """The PATH the unit gives the daemon, and so its checks: this one, this errauto's bin first.

    A user unit otherwise gets systemd's minimal PATH, where `python` or
    `pytest` in a check's command is not the one the user meant.
    """
    first = sysconfig.get_path("scripts")
    rest = [d for d in os.environ.get("PATH", os.defpath).split(os.pathsep)
            if os.path.isabs(d) and d != first]
    return os.pathsep.join(dict.fromkeys([first, *rest]))


def _environment_line(name: str, value: str) -> str:
    """`Environment=NAME=value`, quoted as systemd reads it when the value needs it."""
    value = value.replace("%", "%%")  # % starts a unit specifier
    assignment = f"{name}={value}"
    if any(c in value for c in ' \t"\\\''):
        assignment = '"' + assignment.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"Environment={assignment}\n"


def install_service(*, force: bool, as_json: bool = False) -> int:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    unit = base / "systemd" / "user" / "errauto.service"
    if unit.exists() and not force:
        raise FatalError(f"{unit} already exists (use --force to replace it)")
    environment = _environment_line("PATH", service_path())
    if os.environ.get("ERRAUTO_HOME"):
        environment += _environment_line("ERRAUTO_HOME", os.environ["ERRAUTO_HOME"])
    url = os.environ.get(paths.DATABASE_URL_ENV)
    if url:
        if urlsplit(url).password is not None:
            raise FatalError(f"{paths.DATABASE_URL_ENV} holds a password, which errauto never writes into a file: "
                             "name the server without it (here or in config.toml, docs/database.md) and keep "
                             "the password in ~/.pgpass")
        environment += _environment_line(paths.DATABASE_URL_ENV, url)
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(UNIT.format(python=sys.executable, environment=environment))
    if as_json:
        print(output.dumps({"unit": str(unit), "path": service_path()}))
        return 0
    print(f"wrote {unit}")
    print("enable and start it with:")
    print("  systemctl --user daemon-reload")
    print("  systemctl --user enable --now errauto")
    print("(to keep it running after you log out: loginctl enable-linger $USER)")
    print("its log: journalctl --user -u errauto  (and daemon.log in the state directory)")
    return 0


# -- the command line (main.py dispatches each parsed command here) --------------

def cli_run(args: Namespace) -> int:
    """`errauto daemon run`."""
    return run(workers=args.workers, grace=args.grace, rescan=args.rescan,
               verbose=args.verbose, ready_fd=args.ready_fd)


def cli_start(args: Namespace) -> int:
    """`errauto daemon start`."""
    return start(workers=args.workers, grace=args.grace, rescan=args.rescan,
                 verbose=args.verbose, as_json=args.json)


def cli_stop(args: Namespace) -> int:
    """`errauto daemon stop`."""
    return stop(as_json=args.json)


def cli_status(args: Namespace) -> int:
    """`errauto daemon status`."""
    return status(as_json=args.json)


def forget(host: str, home: str | None, *, as_json: bool) -> int:
    """Remove a machine's worker rows: it no longer counts as missing. Exit 1 when none matched."""
    store = Store()
    removed = store.forget_worker(host, home)
    store.close()
    if as_json:
        print(output.dumps({"host": host, "home": home, "removed": removed}))
    else:
        print(f"errauto: forgot {removed} worker{'s' if removed != 1 else ''} of {host}"
              + (f" ({home})" if home else ""))
    return 0 if removed else 1


def cli_forget(args: Namespace) -> int:
    """`errauto daemon forget`."""
    return forget(args.host, args.home, as_json=args.json)


def cli_install_service(args: Namespace) -> int:
    """`errauto daemon install-service`."""
    return install_service(force=args.force, as_json=args.json)
