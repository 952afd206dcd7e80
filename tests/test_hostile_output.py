"""Text that came from a patch never drives the reader's terminal.

A subject or an author may carry escape sequences (ESC, OSC ... BEL, CSI) or
bidirectional overrides. Every command shows them escaped (`\\x1b`), and the
commit errauto writes has none in its author. Run as a user runs it: the real
command line in a subprocess, its raw bytes checked.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.gitrepo import PYTHON, GitRepo, git

EVIL_NAME = "Ev\x1b]0;owned\x07il \x1b[31mHacker\x9b2J"
EVIL_EMAIL = "ev\x1b[2Jil@example.com"
EVIL_SUBJECT = "Fix \x1b]8;;http://evil.example\x07the docs\x1b]8;;\x07 \x1b[2J\u202eedoc"
# What may never reach a terminal: ESC, BEL, a C1 CSI, the right-to-left override.
FORBIDDEN = (b"\x1b", b"\x07", "\x9b".encode(), "\u202e".encode(), b"\x9b")


def errauto(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([PYTHON, "-m", "errauto_daemon", *args], capture_output=True, env=os.environ.copy())


def assert_clean(proc: subprocess.CompletedProcess[bytes]) -> None:
    for raw in FORBIDDEN:
        assert raw not in proc.stdout, proc.stdout
        assert raw not in proc.stderr, proc.stderr


def hostile_patch(tmp_path: Path, repo: GitRepo) -> Path:
    """A format-patch mail whose author and subject carry escape sequences (git accepts both)."""
    work = tmp_path / "hostile"
    git(tmp_path, "clone", "-q", str(repo.path), str(work))
    (work / "README").write_text("hello there\n")
    git(work, "add", "README")
    env = {**os.environ, "GIT_AUTHOR_NAME": EVIL_NAME, "GIT_AUTHOR_EMAIL": EVIL_EMAIL}
    subprocess.run(["git", "commit", "-q", "-m", EVIL_SUBJECT], cwd=work, env=env, check=True)
    patch = tmp_path / "hostile.patch"
    patch.write_bytes(subprocess.run(["git", "format-patch", "-1", "--stdout"], cwd=work,
                                     capture_output=True, check=True).stdout)
    return patch


@pytest.fixture
def checked_repo(repo: GitRepo) -> GitRepo:
    repo.commit("config", {".errauto.toml": f'[checks.tests]\ncommand = ["{PYTHON}", "-c", "pass"]\n'})
    return repo


@pytest.mark.slow
def test_escape_sequences_from_a_patch_are_shown_escaped_everywhere(
        checked_repo: GitRepo, tmp_path: Path) -> None:
    patch = hostile_patch(tmp_path, checked_repo)

    applied = errauto("apply", str(patch), "--repo", str(checked_repo.path))
    assert applied.returncode == 0, applied.stderr
    assert_clean(applied)
    assert b"merged into main" in applied.stdout
    assert b"Fix \\x1b]8;;http://evil.example\\x07the docs" in applied.stdout
    assert b"\\u202eedoc" in applied.stdout

    listing = errauto("queue", "list")
    assert listing.returncode == 0
    assert_clean(listing)
    assert b"Fix \\x1b]8;;" in listing.stdout

    shown = errauto("queue", "show", "1", "--diff")
    assert shown.returncode == 0
    assert_clean(shown)
    assert b"author: Ev\\x1b]0;owned\\x07il \\x1b[31mHacker\\x9b2J" in shown.stdout

    for command in (("status",), ("queue", "list", "--status", "merged")):
        assert_clean(errauto(*command))


@pytest.mark.slow
def test_the_merged_commit_has_no_control_characters_in_its_author(
        checked_repo: GitRepo, tmp_path: Path) -> None:
    patch = hostile_patch(tmp_path, checked_repo)
    assert errauto("apply", str(patch), "--repo", str(checked_repo.path)).returncode == 0

    log = subprocess.run(["git", "log", "-1", "--format=%an%n%ae%n%cn%n%ce"], cwd=checked_repo.path,
                         capture_output=True, check=True).stdout
    for raw in FORBIDDEN:
        assert raw not in log, log
    name = log.decode().splitlines()[0]
    assert name == "Ev]0;ownedil [31mHacker2J"
