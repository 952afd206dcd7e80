"""errauto: prove candidate fix patches in isolated worktrees and route them."""
from __future__ import annotations

__version__ = "0.1.0"
