"""A real PostgreSQL server for the tests: the machine's initdb and pg_ctl, a
temporary data directory, a unix socket and no TCP port.

initdb refuses to run as root, and CI runs as root: there the server runs as
an unprivileged account (`postgres` when the machine has one, else
`nobody`), through `runuser`. The data directory and the socket live in a
directory of their own under the system's temporary directory, owned by that
account, because the tests' own temporary directories are private to root.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ACCOUNTS = ("postgres", "nobody")


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when the machine has no PostgreSQL server."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    return None


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path  # holds the data directory and the socket
    account: str | None  # whom the server runs as; None: the current user

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        """A libpq URL that reaches the server through its unix socket."""
        user = self.account or pwd.getpwuid(os.getuid()).pw_name
        return f"postgresql://{user}@/errauto?host={self.root}"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.account is not None:
            command = ["runuser", "-u", self.account, "--", *command]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=self.root, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}{done.stderr}")
        return done

    @classmethod
    def create(cls) -> PostgresServer:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server on this machine (initdb and pg_ctl)")
        account = None
        if os.getuid() == 0:
            account = next((a for a in ACCOUNTS if _exists(a)), None)
            if account is None:
                raise RuntimeError("running as root and no unprivileged account to run PostgreSQL as")
        root = Path(tempfile.mkdtemp(prefix="errauto-pg-"))
        if account is not None:
            entry = pwd.getpwnam(account)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server = cls(bin_dir, root, account)
        server._run("initdb", "-D", str(server.data), "-A", "trust", "-E", "UTF8", "--no-sync",
                    "-U", account or pwd.getpwuid(os.getuid()).pw_name)
        with open(server.data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = ''\nunix_socket_directories = '{root}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                       "max_connections = 200\n")
        server.start()
        server._run("createdb", "-h", str(root), "errauto")
        return server

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self._run("pg_isready", "-h", str(self.root), "-q", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not become ready")
            time.sleep(0.1)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _exists(account: str) -> bool:
    try:
        pwd.getpwnam(account)
    except KeyError:
        return False
    return True
