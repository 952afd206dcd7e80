"""Conventions every command keeps: help for every option, --json where it prints, --quiet."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from errauto_daemon.main import build_parser, main
from tests.helpers.cli import run
from tests.helpers.gitrepo import PYTHON, GitRepo


def walk(parser: argparse.ArgumentParser, name: str = "errauto") -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        yield name, action
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from walk(sub, f"{name} {sub_name}")


def test_every_option_and_positional_has_help() -> None:
    missing = [
        f"{where}: {'/'.join(action.option_strings) or action.dest}"
        for where, action in walk(build_parser())
        if not isinstance(action, (argparse._HelpAction, argparse._VersionAction))
        and action.help != argparse.SUPPRESS and not (action.help or "").strip()
    ]
    assert not missing, missing


def test_help_lists_the_commands_but_not_hook_impl() -> None:
    shown = subprocess.run([PYTHON, "-m", "errauto_daemon", "--help"], capture_output=True, text=True,
                           env=os.environ.copy())
    assert shown.returncode == 0
    assert "==SUPPRESS==" not in shown.stdout and "hook-impl" not in shown.stdout
    for command in ("apply", "queue", "submit", "daemon", "watch", "hooks", "status", "monitor", "init", "demo"):
        assert f"\n    {command} " in shown.stdout, command
    # Hidden, not gone: the installed hooks still call it.
    assert main(["hook-impl", "status"]) == 0


def test_watch_commands_print_json(project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    root = os.path.realpath(project.path)
    code, out, _ = run(capsys, "watch", "add", str(project.path), "--json")
    added = json.loads(out)
    assert code == 0 and added["repo"] == root and added["added"] is True
    assert added["inbox"] == str(Path(root) / "patches") and added["target"] == "main"
    code, out, _ = run(capsys, "watch", "list", "--json")
    assert code == 0 and json.loads(out) == [root]
    code, out, _ = run(capsys, "watch", "remove", str(project.path), "--json")
    assert code == 0 and json.loads(out) == {"repo": root, "removed": True}
    code, out, _ = run(capsys, "watch", "remove", str(project.path), "--json")
    assert json.loads(out)["removed"] is False
    assert json.loads(run(capsys, "watch", "list", "--json")[1]) == []


def test_hooks_commands_print_json(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    hooks = repo.path / ".git" / "hooks"
    (hooks / "pre-push").write_text("#!/bin/sh\necho mine\n")
    code, out, _ = run(capsys, "hooks", "install", "--repo", str(repo.path), "--force", "--json")
    installed = json.loads(out)
    assert code == 0 and installed["server"] is False
    assert installed["installed"] == [str(hooks / "pre-commit"), str(hooks / "post-commit"), str(hooks / "pre-push")]
    assert installed["backups"] == [str(hooks / "pre-push.errauto-backup")]
    code, out, _ = run(capsys, "hooks", "uninstall", "--repo", str(repo.path), "--json")
    removed = json.loads(out)
    assert code == 0 and removed["removed"] == installed["installed"]
    assert removed["restored"] == [str(hooks / "pre-push")]
    assert (hooks / "pre-push").read_text() == "#!/bin/sh\necho mine\n"


def test_quiet_prints_nothing_but_errors_still_show(project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "add", str(project.path), "--quiet"]) == 0
    assert main(["hooks", "install", "--repo", str(project.path), "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert (project.path / ".git" / "hooks" / "pre-commit").exists()
    assert main(["hooks", "install", "--repo", "/nonexistent", "-q"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "not a git repository" in err


def test_daemon_commands_print_json(project: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "daemon", "install-service", "--json")
    assert code == 0 and Path(json.loads(out)["unit"]).is_file()
    code, out, _ = run(capsys, "daemon", "stop", "--json")
    assert code == 0 and json.loads(out) == {"pid": None, "stopped": False}
    code, out, _ = run(capsys, "daemon", "start", "--json")
    try:
        started = json.loads(out)
        assert code == 0 and started["started"] is True and started["pid"] > 0
        code, out, _ = run(capsys, "daemon", "status", "--json")
        assert code == 0 and json.loads(out)["pid"] == started["pid"]
    finally:
        code, out, _ = run(capsys, "daemon", "stop", "--json")
    assert code == 0 and json.loads(out) == {"pid": started["pid"], "stopped": True}


def _parser_commands() -> set[tuple[str, str | None]]:
    """Every (command, action) the parser accepts."""
    def choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    return {(name, action) for name, sub in choices(build_parser()).items()
            for action in (tuple(choices(sub)) or (None,))}


def test_every_command_the_parser_accepts_has_one_handler() -> None:
    from errauto_daemon.main import COMMANDS, command_handler

    assert set(COMMANDS) == _parser_commands()
    for command, action in COMMANDS:
        assert callable(command_handler(command, action)), (command, action)


def test_a_hook_imports_only_its_own_command() -> None:
    code = ("import sys; from errauto_daemon.main import main; code = main(['hook-impl', 'status']); "
            "print(code, sorted(m for m in ('pygit2', 'errauto_daemon.validate', 'errauto_daemon.commands.queue', "
            "'errauto_daemon.patchfile') if m in sys.modules))")
    proc = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert proc.stdout.splitlines()[-1] == "0 []", proc.stdout + proc.stderr
