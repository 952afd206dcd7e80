"""Running the git command line, safely, from anywhere errauto is called.

errauto runs inside git hooks, which export variables such as GIT_DIR and
GIT_INDEX_FILE for the repository being pushed to or committed in. Left in
place they silently redirect every git command errauto runs, in any other
directory, at that repository: `git worktree add` in a hook would then write
the hook repository's index, and a check's own `git status` would read it.
We drop the variables that say *which* repository to act on, and keep the
ones that only configure git (identity, config, ssh).
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# Variables that select a repository, index, object store or work tree.
# See git(1), "ENVIRONMENT VARIABLES"; GIT_QUARANTINE_PATH is set for
# pre-receive hooks, GIT_PREFIX for aliases, GIT_REFLOG_ACTION by porcelain.
LOCATION_VARS = frozenset((
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_REFLOG_ACTION",
    "GIT_INTERNAL_SUPER_PREFIX",
))


class GitError(Exception):
    """A git command errauto ran failed: an internal error, not the user's.

    Where a failing git command means the user named something that is not a
    repository, the caller says so with a FatalError instead.
    """


def scrubbed_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for errauto's own git commands."""
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key in LOCATION_VARS:
            del env[key]
    # Never stop to ask a question: errauto often runs with no terminal.
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def run(
    args: Sequence[str],
    cwd: str | Path,
    *,
    check: bool = True,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    index_file: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run git in `cwd`; `index_file` names the index to use, when a caller
    really means the one a hook was handed (`git commit -a` commits through
    a temporary index)."""
    environ = scrubbed_env(env)
    if index_file is not None:
        environ["GIT_INDEX_FILE"] = str(Path(cwd, index_file).resolve())
    proc = subprocess.run(
        ("git", *args),
        cwd=cwd,
        input=input,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
        check=False,
    )
    if check and proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[-1] if message else f"exit code {proc.returncode}"
        raise GitError(f"git {args[0]} failed: {detail}")
    return proc


def output(args: Sequence[str], cwd: str | Path) -> str:
    return run(args, cwd).stdout.decode("utf-8", "surrogateescape").strip()


def read_objects(cwd: str | Path, specs: Sequence[str]) -> dict[str, bytes | None]:
    """The contents of several objects (`rev:path`, `ref^{commit}`, ...) in one git process.

    A spec that names nothing maps to None. One `cat-file --batch` instead of a
    process per object: hooks run on the pusher's clock.
    """
    if not specs:
        return {}
    proc = run(("cat-file", "--batch"), cwd, input="".join(s + "\n" for s in specs).encode())
    out: dict[str, bytes | None] = {}
    data = proc.stdout
    pos = 0
    for spec in specs:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        pos = end + 1
        if len(header) != 3 or header[-1] == b"missing":
            out[spec] = None
            continue
        size = int(header[2])
        out[spec] = data[pos:pos + size]
        pos += size + 1  # the content is followed by a newline
    return out


class FetchFailed(GitError):
    """`git fetch` failed; `detail` is git's last line."""

    def __init__(self, remote: str, ref: str, detail: str) -> None:
        super().__init__(f"fetching {ref} from {remote} failed: {detail}")
        self.detail = detail


def fetch(cwd: str | Path, remote: str, ref: str) -> str:
    """Fetch `ref` from `remote`; its tip there. No branch moves (a remote-tracking
    ref may, as with any `git fetch` from a configured remote)."""
    proc = run(("fetch", "--quiet", remote, ref), cwd, check=False)
    if proc.returncode != 0:
        raise FetchFailed(remote, ref, last_line(proc))
    return output(("rev-parse", "FETCH_HEAD"), cwd)


def last_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    """What git said last (either stream), or its exit code."""
    text = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else f"exit code {proc.returncode}"
