"""A real git repository in a temp dir, driven with the real git command line."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pygit2

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def git(cwd: Path | str, *args: str, check: bool = True, input: bytes | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    proc = subprocess.run(("git", *args), cwd=cwd, input=input, capture_output=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode("utf-8", "replace")


class GitRepo:
    def __init__(self, path: Path, *, bare: bool = False) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "-q", "-b", "main", *(["--bare"] if bare else []))

    def git(self, *args: str, check: bool = True, input: bytes | None = None) -> str:
        return git(self.path, *args, check=check, input=input)

    def write(self, name: str, content: str | bytes, mode: int | None = None) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        if mode is not None:
            path.chmod(mode)
        return path

    def read(self, name: str) -> str:
        return (self.path / name).read_text()

    def commit(self, message: str = "commit", files: dict[str, str | bytes] | None = None) -> str:
        for name, content in (files or {}).items():
            self.write(name, content)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", ref).strip()

    def diff(self, *args: str) -> bytes:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_DIR")}
        return subprocess.run(("git", "diff", *args), cwd=self.path, capture_output=True, check=True,
                              env=env).stdout

    def edit(self, edits: Mapping[str, str | bytes | None]) -> None:
        """Write (or, for None, delete) files, and stage everything."""
        for name, content in edits.items():
            if content is None:
                (self.path / name).unlink()
            else:
                self.write(name, content)
        self.git("add", "-A")

    def make_patch(self, edits: Mapping[str, str | bytes | None], *, binary: bool = False) -> bytes:
        """The `git diff` of `edits` against HEAD; the work tree is restored after."""
        self.edit(edits)
        patch = self.diff("--cached", *(["--binary"] if binary else []))
        self.git("reset", "-q", "--hard", "HEAD")
        return patch

    def pygit2(self) -> pygit2.Repository:
        return pygit2.Repository(str(self.path))


CALC = '''\
def add(a, b):
    return a - b


def mul(a, b):
    return a * b


def neg(a):
    return -a
'''

TEST_CALC = '''\
import unittest

from calc import add, mul


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

    def test_mul(self):
        self.assertEqual(mul(2, 3), 6)
'''

LINT = '''\
"""A tiny linter: no line over 79 characters, no trailing spaces."""
import pathlib
import sys

bad = 0
for path in sorted(pathlib.Path(".").rglob("*.py")):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if len(line) > 79 or line != line.rstrip():
            print(f"{path}:{number}: style")
            bad += 1
sys.exit(1 if bad else 0)
'''


def config_toml(*, tests: bool = True, lint: bool = True, extra: str = "", top: str = "") -> str:
    """A config; `top` holds top-level keys, `extra` more tables."""
    lines = ['target = "main"', top.rstrip("\n")]
    if tests:
        lines += ["[checks.tests]", f'command = ["{PYTHON}", "-m", "unittest", "discover", "-q", "-s", "tests", "-t", "."]']
    if lint:
        lines += ["[checks.lint]", f'command = ["{PYTHON}", "tools/lint.py"]']
    return "\n".join(lines) + "\n" + extra


def python_project(path: Path, *, config: str | None = None) -> GitRepo:
    """A small project with a bug in add(), its tests and a lint check, committed."""
    repo = GitRepo(path)
    repo.commit("initial project", {
        "calc.py": CALC,
        "tests/__init__.py": "",
        "tests/test_calc.py": TEST_CALC,
        "tools/lint.py": LINT,
        ".errauto.toml": config if config is not None else config_toml(),
    })
    return repo


def tools_on_path(directory: Path, scripts: dict[str, str]) -> str:
    """A PATH with only these programs (shell scripts), `python` (this interpreter) and the system's.

    So a test decides which tools a project's checks find, whatever this machine has installed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    scripts = {"python": f'#!/bin/sh\nexec "{PYTHON}" "$@"\n', **scripts}
    for name, text in scripts.items():
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)
    return os.pathsep.join([str(directory), "/usr/bin", "/bin"])
