"""The code passes ruff with the rules configured in pyproject.toml."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.gitrepo import ROOT

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend


def test_ruff_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "errauto_daemon", "tests", "bench"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
