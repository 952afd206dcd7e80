"""`errauto hooks install / uninstall`: git hooks that hand off to `errauto hook-impl`.

Installs into the repository's hooks directory as git itself finds it
(`git rev-parse --git-path hooks`, which honours `core.hooksPath` and works
in bare repositories). A work tree gets `pre-commit` (checks patch
files), `post-commit` (submits them once the commit exists) and `pre-push`; a
server (`--server`, or any bare repository) gets `post-receive`, and push
options are advertised so `git push -o errauto.note=...` reaches the hook.

A hook errauto did not write is never overwritten unless `--force`, and
then it is kept as `<hook>.errauto-backup`; `uninstall` puts it back.
"""
from __future__ import annotations

import os
import shlex
import sys
from argparse import Namespace
from pathlib import Path

from errauto_daemon import git, output
from errauto_daemon.errors import FatalError

MARKER = "# errauto-hook"
BACKUP = ".errauto-backup"
CLIENT_HOOKS = ("pre-commit", "post-commit", "pre-push")
SERVER_HOOKS = ("post-receive",)
TEMPLATES = Path(__file__).resolve().parent.parent / "hooks"


def hooks_dir(repo: str) -> tuple[Path, bool]:
    """The directory git runs hooks from, and whether the repository is bare."""
    try:
        bare = git.output(("rev-parse", "--is-bare-repository"), repo) == "true"
        where = git.output(("rev-parse", "--git-path", "hooks"), repo)
    except (git.GitError, FileNotFoundError, NotADirectoryError):  # the last two: no such directory
        raise FatalError(f"not a git repository: {repo}") from None
    path = Path(where)
    return (path if path.is_absolute() else Path(repo) / path), bare


def render(name: str) -> str:
    """The hook script, calling this errauto (its interpreter, absolute)."""
    command = f"{shlex.quote(sys.executable)} -m errauto_daemon"
    text = (TEMPLATES / name).read_text()
    return text.replace('ERRAUTO="${ERRAUTO:-errauto}"', f'ERRAUTO="${{ERRAUTO:-{command}}}"')


def ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return False


def install(repo: str, *, server: bool, force: bool, as_json: bool = False) -> int:
    directory, bare = hooks_dir(repo)
    names = SERVER_HOOKS if (server or bare) else CLIENT_HOOKS
    directory.mkdir(parents=True, exist_ok=True)
    say = _Say(as_json, ("installed", "backups"))
    # Check them all first: install all or none.
    for name in names:
        path = directory / name
        if path.exists() and not ours(path) and not force:
            raise FatalError(f"{path} exists and was not written by errauto; "
                             "use --force to replace it (it is kept as "
                             f"{name}{BACKUP} and restored by uninstall)")
    for name in names:
        path = directory / name
        if path.exists() and not ours(path):
            os.replace(path, path.with_name(name + BACKUP))
            say(f"kept your {name} hook as {path.name}{BACKUP}", backups=str(path.with_name(name + BACKUP)))
        tmp = path.with_name(f".{name}.errauto-new")
        tmp.write_text(render(name))
        tmp.chmod(0o755)
        os.replace(tmp, path)
        say(f"installed {path}", installed=str(path))
    if server or bare:
        git.run(("config", "receive.advertisePushOptions", "true"), repo)
        say("push options advertised (git push -o errauto.note=... reaches the hook)")
        say("submissions are validated by the daemon: errauto daemon start")
    say.done(hooks_dir=str(directory), server=server or bare)
    return 0


def uninstall(repo: str, *, as_json: bool = False) -> int:
    directory, _ = hooks_dir(repo)
    say = _Say(as_json, ("removed", "restored"))
    removed = 0
    for name in CLIENT_HOOKS + SERVER_HOOKS:
        path = directory / name
        backup = path.with_name(name + BACKUP)
        if ours(path):
            path.unlink()
            removed += 1
            say(f"removed {path}", removed=str(path))
            if backup.exists():
                os.replace(backup, path)
                say(f"restored your previous {name} hook", restored=str(path))
    if not removed:
        say(f"no errauto hooks in {directory}")
    say.done(hooks_dir=str(directory))
    return 0


class _Say:
    """Lines for people as they happen, or one JSON object at the end (lists of paths per key)."""

    def __init__(self, as_json: bool, keys: tuple[str, ...]) -> None:
        self.as_json = as_json
        self.record: dict[str, list[str]] = {key: [] for key in keys}

    def __call__(self, line: str, **paths: str) -> None:
        if not self.as_json:
            print(line)
        for key, value in paths.items():
            self.record[key].append(value)

    def done(self, **fields: object) -> None:
        if self.as_json:
            print(output.dumps({**fields, **self.record}))


# -- the command line (main.py dispatches each parsed command here) --------------

def cli_install(args: Namespace) -> int:
    """`errauto hooks install`."""
    return install(args.repo, server=args.server, force=args.force, as_json=args.json)


def cli_uninstall(args: Namespace) -> int:
    """`errauto hooks uninstall`."""
    return uninstall(args.repo, as_json=args.json)
