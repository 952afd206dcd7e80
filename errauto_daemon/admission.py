"""What a patch must pass before any check runs: parsed (once, within its
time budget), its names and the inbox folder guarded, applied in memory to
the target's tip, the result trees guarded. The validator and the
pre-commit hook call the same steps, so a patch the hook lets through is
one the validator admits."""
from __future__ import annotations

from dataclasses import dataclass

import pygit2

from errauto_daemon import guard
from errauto_daemon.config import Config
from errauto_daemon.patchapply import Overlay, apply_patch
from errauto_daemon.patchfile import Deadline, Patch, parse_once


@dataclass(frozen=True)
class Admitted:
    patch: Patch
    overlays: tuple[Overlay, ...]  # one per commit of the patch, the last one the result
    review_only: tuple[str, ...]  # what the guard leaves to a person (submodules, .gitmodules)
    notes: tuple[str, ...]  # what applying had to do (offsets, fuzz)


def admit(repo: pygit2.Repository, config: Config, tip: pygit2.Commit, data: bytes, name: str) -> Admitted:
    """The patch applied in memory on `tip`; PatchRejected with the reason when it may not be."""
    limits = config.limits()
    deadline = Deadline(limits.max_parse_seconds)  # one budget for parsing and applying
    patch = parse_once(data, name, limits=limits, exists=lambda p: p in tip.tree, deadline=deadline)
    guard.check_names(patch)
    guard.check_inbox(patch, config.inbox)
    guard.check_base(patch, tip.tree)
    overlays, notes = apply_patch(repo, tip.tree, patch, target=config.target, deadline=deadline)
    review_only: list[str] = []
    before = Overlay(repo, tip.tree)
    for commit, after in zip(patch.commits, overlays, strict=True):
        review_only += guard.check_tree(before, after, commit).review_only
        before = after
    return Admitted(patch, tuple(overlays), tuple(review_only), tuple(notes))
