"""The package type-checks under mypy --strict, the tests under a relaxed mypy
(both configured in pyproject.toml)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.gitrepo import ROOT

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache"), *args],
                          cwd=ROOT, capture_output=True, text=True)


def test_mypy_strict_is_clean() -> None:
    proc = mypy()
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_tests_type_check() -> None:
    proc = mypy("tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr
