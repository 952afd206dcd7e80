"""The package type-checks under mypy --strict (configured in pyproject.toml)."""
from __future__ import annotations

import subprocess
import sys

from gitfixture import ROOT


def test_mypy_strict_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
