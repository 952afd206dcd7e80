"""Validate one submission and carry out its route.

    claim (queued -> validating)
    parse + guard names          malformed / unsafe       -> rejected
    apply in memory on the tip   does not apply / applied -> rejected
    guard the result tree        symlinks, submodules
    write objects; take a pooled worktree at the tip; write the patch into it
    run the checks; clean the worktree
    score -> decide -> carry out:
        auto_merge    commit on the validated base, CAS the ref; if the target
                      moved, validate again on the new tip (bounded)
        pull_request  (GitHub route) / review when GitHub is not configured
        review        awaiting_review, with the explanation

Every outcome is a state transition in the store; nothing is kept only in
memory. An unexpected exception marks the submission failed with a one-line
reason and propagates, so the caller can log the traceback.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pygit2

from errauto_daemon import checks as checks_mod
from errauto_daemon import config as config_mod
from errauto_daemon import guard, merge, paths, route, score
from errauto_daemon.config import Config
from errauto_daemon.errors import Cancelled, FatalError, PatchRejected
from errauto_daemon.intake import open_repo
from errauto_daemon.patchapply import Overlay, apply_patch
from errauto_daemon.patchfile import Patch, parse
from errauto_daemon.store import DECIDED, CheckRow, Store, Submission
from errauto_daemon.workspace import Pool

ConfigHook = Callable[[Config], Config]


@dataclass(frozen=True)
class Validation:
    base: str
    patch: Patch
    trees: tuple[pygit2.Oid, ...]
    results: tuple[checks_mod.CheckResult, ...]
    confidence: score.Confidence
    attempt: int
    timings: dict[str, float]


class _Clock:
    """Seconds spent per phase, shown with the explanation and read by bench/."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now - self._last, 6)
        self._last = now


class Validator:
    """Validates submissions of any repository; one per worker thread."""

    def __init__(self, store: Store, *, cancel: threading.Event | None = None,
                 config_hook: ConfigHook | None = None, pool_size: int = 8,
                 use_cache: bool = True) -> None:
        self.store = store
        self.cancel = cancel
        self.use_cache = use_cache
        self.config_hook = config_hook
        self.pool_size = pool_size
        # The worktree used by the last validation, still to be cleaned. It is
        # cleaned after the decision is recorded, so the decision does not
        # wait for the scan; and before this validator takes another slot.
        self._pending: ExitStack | None = None
        # Open repositories, kept across submissions (pygit2 objects are not
        # shared between threads: one Validator per thread).
        self._repos: dict[str, pygit2.Repository] = {}

    def release(self) -> None:
        """Clean and unlock the worktree the last validation used, if any."""
        if self._pending is not None:
            stack, self._pending = self._pending, None
            stack.close()

    # -- entry points ------------------------------------------------------------

    def process(self, sub_id: int, from_states: tuple[str, ...] = ("queued",)) -> Submission:
        """Claim and decide a submission; returns it as it ends up.

        If another process is working on it, returns it as it is now.
        """
        with self.store.hold(sub_id) as held:
            if not held:
                return self.store.get(sub_id)
            sub = self.store.claim(sub_id, from_states)
            if sub is None:
                return self.store.get(sub_id)
            try:
                return self._guarded(sub, self._decide)
            finally:
                self.release()

    def approve(self, sub_id: int, who: str) -> Submission:
        """A person approved a held submission: merge it, with the same CAS rules."""
        with self.store.hold(sub_id) as held:
            sub = self.store.claim(sub_id, ("awaiting_review",), detail=f"approved by {who}") if held else None
            if sub is None:
                current = self.store.get(sub_id)
                raise FatalError(f"submission {sub_id} is {current.state}; "
                                 "only awaiting_review can be approved")
            try:
                return self._guarded(sub, lambda s: self._approve(s, who))
            finally:
                self.release()

    def recover(self, max_attempts: int = 3) -> list[Submission]:
        """Requeue submissions abandoned mid-validation by a process that died.

        A submission whose merge already reached the target (its recorded
        merge intent is on the branch) is marked merged instead: a merge is
        never done twice. One interrupted too often is failed, with why.
        """
        out = []
        for sub in self.store.submissions(("validating",), limit=10_000):
            with self.store.hold(sub.id) as held:
                if not held:
                    continue  # someone alive is working on it
                current = self.store.get(sub.id)
                if current.state != "validating":
                    continue
                out.append(self._recover_one(current, max_attempts))
        return out

    def _recover_one(self, sub: Submission, max_attempts: int) -> Submission:
        if sub.merge_intent and self._merged_already(sub):
            return self.store.transition(
                sub.id, "merged", merged_commit=sub.merge_intent, route=sub.route or route.AUTO_MERGE,
                reason=(sub.reason or "merged") + " (recorded after a restart)",
                detail="recovered: the merge had reached the target")
        if sub.attempts >= max_attempts:
            return self.store.transition(
                sub.id, "failed", reason=f"validation was interrupted {sub.attempts} times")
        self.store.requeue(sub.id, "interrupted: the process validating it stopped")
        return self.store.get(sub.id)

    def _merged_already(self, sub: Submission) -> bool:
        assert sub.merge_intent
        try:
            repo = self._open(sub.repo)
            config = self._config(repo, sub)
        except FatalError:
            return False
        intent = pygit2.Oid(hex=sub.merge_intent)
        tips = [repo.references[config.target_ref].target]
        if config.push:
            tip = merge.remote_tip(repo, config)
            if tip is not None:
                tips.append(pygit2.Oid(hex=tip))
        return any(t == intent or (intent in repo and repo.descendant_of(t, intent)) for t in tips)

    def _guarded(self, sub: Submission, work: Callable[[Submission], Submission]) -> Submission:
        try:
            return work(sub)
        except PatchRejected as exc:
            return self.store.transition(sub.id, "rejected", route=route.REJECTED, reason=exc.reason)
        except Cancelled:
            self.store.requeue(sub.id, "interrupted: errauto is stopping", uncount_attempt=True)
            return self.store.get(sub.id)
        except FatalError as exc:
            # A user-fixable problem (bad config, missing target): not the patch's fault.
            self.store.transition(sub.id, "failed", reason=str(exc))
            raise
        except BaseException as exc:
            self.store.transition(sub.id, "failed", reason=f"internal error: {type(exc).__name__}")
            raise

    # -- the pipeline ------------------------------------------------------------

    def _open(self, path: str) -> pygit2.Repository:
        repo = self._repos.get(path)
        if repo is None:
            repo = self._repos[path] = open_repo(path)
        return repo

    def _config(self, repo: pygit2.Repository, sub: Submission) -> Config:
        config = config_mod.load(repo, sub.target)
        return self.config_hook(config) if self.config_hook else config

    def _decide(self, sub: Submission) -> Submission:
        repo = self._open(sub.repo)
        config = self._config(repo, sub)
        revalidations = 0
        while True:
            tip = repo.references[config.target_ref].peel(pygit2.Commit)
            validation = self.validate(repo, config, sub, tip)
            conf = validation.confidence
            decision = route.decide(conf, github=False)
            explanation = self._explanation(validation, decision)
            fields: dict[str, Any] = dict(
                confidence=conf.value, explanation=explanation, base_commit=validation.base,
                result_tree=str(validation.trees[-1]))
            if decision.route == route.AUTO_MERGE:
                started = time.perf_counter()
                outcome = self._merge(repo, config, sub, validation)
                explanation["timings"]["merge"] = round(time.perf_counter() - started, 6)
                if outcome.status == merge.MERGED:
                    return self.store.transition(
                        sub.id, "merged", route=route.AUTO_MERGE, merged_commit=outcome.commit,
                        reason=outcome.reason or decision.reason, **fields)
                if outcome.status == merge.MOVED:
                    revalidations += 1
                    if revalidations > config.max_revalidations:
                        return self.store.transition(
                            sub.id, "awaiting_review", route=route.REVIEW,
                            reason=f"{config.target} kept moving: validated {revalidations} times "
                                   "without a chance to merge", **fields)
                    self.store.add_event(sub.id, "revalidate",
                                         f"{config.target} moved to {str(outcome.tip)[:12]}")
                    continue
                return self.store.transition(
                    sub.id, "awaiting_review", route=route.REVIEW,
                    reason=f"auto-merge held: {outcome.reason}", **fields)
            return self.store.transition(sub.id, "awaiting_review", route=route.REVIEW,
                                         reason=decision.reason, **fields)

    def _approve(self, sub: Submission, who: str) -> Submission:
        repo = self._open(sub.repo)
        config = self._config(repo, sub)
        approved = {c.name: c.status for c in self.store.checks(sub.id)}
        revalidations = 0
        while True:
            tip = repo.references[config.target_ref].peel(pygit2.Commit)
            if sub.base_commit == str(tip.id) and sub.result_tree and revalidations == 0:
                validation = self._reapply(repo, config, sub, tip)
            else:
                validation = self.validate(repo, config, sub, tip)
                worse = [r.name for r in validation.results
                         if approved.get(r.name) == "passed" and r.status != "passed"]
                if worse:
                    return self.store.transition(
                        sub.id, "awaiting_review", route=route.REVIEW,
                        reason=f"approved by {who}, but on the new tip of {config.target} "
                               f"{', '.join(worse)} no longer pass",
                        confidence=validation.confidence.value, base_commit=validation.base,
                        result_tree=str(validation.trees[-1]),
                        explanation=self._explanation(validation, None))
            outcome = self._merge(repo, config, sub, validation)
            if outcome.status == merge.MERGED:
                return self.store.transition(
                    sub.id, "merged", merged_commit=outcome.commit, base_commit=validation.base,
                    reason=f"approved by {who}" + (f"; {outcome.reason}" if outcome.reason else ""),
                    detail=f"approved by {who}")
            if outcome.status == merge.MOVED and revalidations < config.max_revalidations:
                revalidations += 1
                continue
            reason = outcome.reason or f"{config.target} kept moving"
            return self.store.transition(sub.id, "awaiting_review",
                                         reason=f"approved by {who}, but the merge was held: {reason}")

    def validate(self, repo: pygit2.Repository, config: Config, sub: Submission,
                 tip: pygit2.Commit) -> Validation:
        self.release()
        clock = _Clock()
        patch, overlays, review_only, notes = self._apply(repo, config, sub, tip)
        changed = sorted({p for f in patch.files() for p in f.paths()})
        protected = guard.protected_hits(changed, config.protected_paths)
        trees = tuple(o.write_tree() for o in overlays)
        clock.lap("apply")
        attempt = self._next_attempt(sub.id)
        key = (str(tip.tree.id), sub.dedup_key, config.checks_fingerprint())
        cached = self.store.cached_validation(*key) if self.use_cache and config.checks else None
        if cached is not None and cached[0] == str(trees[-1]):
            results = [checks_mod.CheckResult(**r) for r in cached[1]["results"]]
            baselines = dict(cached[1]["baselines"])
            notes = [*notes, "check results reused from an identical validation (same base, "
                             "patch and checks)"]
            clock.lap("cache")
        else:
            results, baselines = self._run_checks(repo, config, sub, tip, overlays[-1], attempt, clock)
            if any(r.status == "cancelled" for r in results):
                raise Cancelled()
            if config.checks:
                self.store.cache_validation(*key, str(trees[-1]), {
                    "results": [dataclasses.asdict(r) for r in results], "baselines": baselines})
        self.store.record_checks(sub.id, attempt, str(tip.id), [
            CheckRow(r.name, attempt, r.status, r.exit_code, r.duration,
                     score.check_score(c, r, baselines.get(c.name))[0], c.weight, r.detail,
                     r.log_path, str(tip.id))
            for c, r in zip(config.checks, results)])
        conf = score.compute(config, results, baselines=baselines, protected=protected,
                             review_only=review_only, notes=notes)
        clock.lap("score")
        return Validation(str(tip.id), patch, trees, tuple(results), conf, attempt, clock.phases)

    def _reapply(self, repo: pygit2.Repository, config: Config, sub: Submission,
                 tip: pygit2.Commit) -> Validation:
        """The trees of an already-validated submission on its unchanged base."""
        patch, overlays, review_only, notes = self._apply(repo, config, sub, tip)
        trees = tuple(o.write_tree() for o in overlays)
        if str(trees[-1]) != sub.result_tree:
            raise FatalError(f"submission {sub.id} no longer produces the tree it was validated with")
        conf = score.compute(config, (), review_only=review_only, notes=notes)
        return Validation(str(tip.id), patch, trees, (), conf, 0, {})

    def _apply(self, repo: pygit2.Repository, config: Config, sub: Submission,
               tip: pygit2.Commit) -> tuple[Patch, list[Overlay], list[str], list[str]]:
        data = sub.read_patch()
        patch = parse(data, sub.source_detail or "patch", limits=config.limits(),
                      exists=lambda p: p in tip.tree)
        guard.check_names(patch)
        guard.check_base(patch, tip.tree)
        overlays, notes = apply_patch(repo, tip.tree, patch, target=config.target)
        review_only: list[str] = []
        before = Overlay(repo, tip.tree)
        for commit, after in zip(patch.commits, overlays):
            review_only += guard.check_tree(before, after, commit).review_only
            before = after
        return patch, overlays, review_only, notes

    def _run_checks(self, repo: pygit2.Repository, config: Config, sub: Submission,
                    tip: pygit2.Commit, overlay: Overlay, attempt: int, clock: _Clock,
                    ) -> tuple[list[checks_mod.CheckResult], dict[str, float | None]]:
        log_dir = paths.check_logs_dir() / str(sub.id)
        baselines: dict[str, float | None] = {}
        if not config.checks:
            return [], baselines
        pool = Pool(repo, self.pool_size, self._repos)
        stack = ExitStack()
        slot = stack.enter_context(pool.acquire(tip))
        stack.callback(slot.clean)  # runs before the slot is unlocked
        self._pending = stack
        try:
            for check in config.checks:
                if check.kind != "coverage":
                    continue
                fp = config.checks_fingerprint()
                found, value = self.store.baseline(sub.repo, str(tip.tree.id), check.name, fp)
                if not found:
                    base_result = checks_mod.run_check(
                        check, slot.path, log_dir / f"{attempt}-{check.name}-base.log",
                        checks_mod.check_env(config.secrets(), check.env), self.cancel)
                    value = base_result.value
                    self.store.set_baseline(sub.repo, str(tip.tree.id), check.name, fp, value)
                    slot.clean()
                baselines[check.name] = value
            slot.write(overlay)
            clock.lap("worktree")
            results = [
                checks_mod.run_check(check, slot.path, log_dir / f"{attempt}-{check.name}.log",
                                     checks_mod.check_env(config.secrets(), check.env), self.cancel)
                for check in config.checks
            ]
            clock.lap("checks")
        except BaseException:
            self.release()
            raise
        return results, baselines

    def _merge(self, repo: pygit2.Repository, config: Config, sub: Submission,
               validation: Validation) -> merge.MergeOutcome:
        new = merge.build_commits(
            repo, pygit2.Oid(hex=validation.base), validation.patch.commits, validation.trees,
            submission_id=sub.id, fallback_message=sub.title + "\n")
        # Written before the ref can move: after a crash, recovery finds the
        # commit on the target and records the merge instead of redoing it.
        self.store.set_fields(sub.id, merge_intent=str(new))
        return merge.merge(repo, config, validation.base, str(new),
                           f"errauto: merge submission {sub.id} ({sub.title})")

    def _next_attempt(self, sub_id: int) -> int:
        row = self.store.conn.execute(
            "SELECT COALESCE(MAX(attempt), 0) + 1 FROM checks WHERE submission_id = ?",
            (sub_id,)).fetchone()
        return int(row[0])

    @staticmethod
    def _explanation(validation: Validation, decision: route.Decision | None) -> dict[str, Any]:
        out = validation.confidence.to_json()
        out["base"] = validation.base
        out["attempt"] = validation.attempt
        out["timings"] = validation.timings
        if decision is not None:
            out["route"] = decision.route
            out["reason"] = decision.reason
        return out


def wait_decided(store: Store, sub_id: int, timeout: float | None = None,
                 poll: float = 0.1) -> Submission:
    """Block until another process has decided the submission."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        sub = store.get(sub_id)
        if sub.state in DECIDED:
            return sub
        if deadline is not None and time.monotonic() > deadline:
            return sub
        time.sleep(poll)
