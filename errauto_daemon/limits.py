"""How big a patch may be, and how long reading it may take: what the parser enforces and the configuration sets.

A leaf, so that reading the configuration (as every hook does) does not load
the patch parser.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_patch_bytes: int = 5 * 1024 * 1024
    max_hunk_lines: int = 10_000
    max_files: int = 1_000
    max_blob_bytes: int = 50 * 1024 * 1024
    # Parsing and applying one patch together; past it the patch is rejected.
    max_parse_seconds: float = 10.0
