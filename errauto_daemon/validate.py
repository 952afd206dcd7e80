"""Validate one submission; the route's carrying out is `carryout`'s.

    claim (queued -> validating)
    parse + guard names          malformed / unsafe       -> rejected
    apply in memory on the tip   does not apply / applied -> rejected
    guard the result tree        symlinks, submodules
    write objects; take a pooled worktree at the tip; write the patch into it
    run the checks (or reuse an identical validation's results)
    score -> an immutable `Validation`
    route.decide -> carryout.carry_out: review, merge or pull request; if the
                    target moved, validate again on the new tip (bounded)
    clean the worktree

Every outcome is a state transition in the store; nothing is kept only in
memory. An unexpected exception marks the submission failed with a one-line
reason and propagates, so the caller can log the traceback.

It stops early (`Cancelled`) when a person rejects the submission meanwhile
(`queue reject`, from any process: a `cancel` event in the store) or the
daemon's grace period runs out; it looks between steps, and ten times a
second while a check runs (the check's process group is then killed). A
person's cancel ends the submission rejected with their reason; a stopping
daemon puts it back in the queue, up to `retry_internal` interrupted
attempts, then fails it.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pygit2

from errauto_daemon import checks as checks_mod
from errauto_daemon import config as config_mod
from errauto_daemon import guard, merge, paths, route, sandbox, score
from errauto_daemon.admission import admit
from errauto_daemon.carryout import Again, Outcome, carry_out, merge_approved, merges_serial, record
from errauto_daemon.config import Config
from errauto_daemon.domain import CheckStatus, Route, State
from errauto_daemon.errors import STOPPING, Cancelled, FatalError, HoldLost, PatchRejected
from errauto_daemon.evidence import rules_version as evidence_rules
from errauto_daemon.evidence.record import Evidence
from errauto_daemon.evidence.run import Found
from errauto_daemon.intake import reopens
from errauto_daemon.patchapply import Overlay
from errauto_daemon.progress import SILENT, Progress
from errauto_daemon.repo import open_repo, remote_name
from errauto_daemon.store import DECIDED, CheckRow, Store, Submission
from errauto_daemon.store.sources import machine_name
from errauto_daemon.validation import Validation
from errauto_daemon.workspace import Pool

ConfigHook = Callable[[Config], Config]

# What `queue retry` may validate again.
RETRYABLE = (State.QUEUED, State.REJECTED, State.FAILED, State.AWAITING_REVIEW)


def retry_refused(sub: Submission, *, force: bool) -> str | None:
    """Why `sub` may not be validated again now (None: it may): the rule of `queue retry`."""
    if sub.state not in RETRYABLE:
        return f"submission {sub.id} is {sub.state}; only {', '.join(RETRYABLE)} can be retried"
    if sub.state == State.REJECTED and not reopens(sub) and not force:
        return (f"submission {sub.id} was rejected by a person ({sub.reason}); "
                "retry with --force to validate it again")
    return None


class NotHere(FatalError):
    """This machine has no clone of the submission's repository (a database machines share)."""


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
                 use_cache: bool = True, retry_internal: int = 0,
                 progress: Progress | None = None) -> None:
        """`retry_internal`: how many attempts an internal error (or an
        interruption by a stopping daemon) may take before the submission
        fails (the daemon retries; a CLI run reports at once).
        `cancel`: set when running checks must stop (the daemon's grace ran out).
        `progress`: told of each phase and check as the validation runs."""
        self.store = store
        self.progress = progress or SILENT
        self.cancel = cancel
        self.use_cache = use_cache
        self.retry_internal = retry_internal
        self.config_hook = config_hook
        self.pool_size = pool_size
        # The worktree used by the last validation, still to be cleaned. It is
        # cleaned after the decision is recorded, so the decision does not
        # wait for the scan; and before this validator takes another slot.
        self._pending: ExitStack | None = None
        # Open repositories, kept across submissions (pygit2 objects are not
        # shared between threads: one Validator per thread).
        self._repos: dict[str, pygit2.Repository] = {}
        self._clones: dict[str, str] = {}  # a push remote -> this machine's clone of it

    def release(self) -> None:
        """Clean and unlock the worktree the last validation used, if any."""
        if self._pending is not None:
            stack, self._pending = self._pending, None
            stack.close()

    # -- entry points ------------------------------------------------------------

    def process(self, sub_id: int, from_states: tuple[State, ...] = (State.QUEUED,)) -> Submission:
        """Claim and decide a submission; returns it as it ends up.

        If another process is working on it, returns it as it is now. NotHere,
        before anything changed, if this machine has no clone of its repository.
        """
        self.local_root(self.store.get(sub_id))
        with self.store.hold(sub_id) as held:
            if not held:
                return self.store.get(sub_id)
            sub = self.store.claim(sub_id, from_states)
            if sub is None:
                return self.store.get(sub_id)
            return self._decide_claimed(sub)

    def approve(self, sub_id: int, who: str, *, force: bool = False) -> Submission:
        """A person approved a held submission: merge it, with the same CAS rules.

        A submission held because it hit a gate (a gate check failed, it
        touches protected paths, the guard allows review only) is merged only
        with `force`, and the history says so.
        """
        self.local_root(self.store.get(sub_id))
        with self.store.hold(sub_id) as held:
            current = self.store.get(sub_id)
            if not held or current.state != State.AWAITING_REVIEW:
                state = "being validated" if not held else current.state
                raise FatalError(f"submission {sub_id} is {state}; only awaiting_review can be approved")
            hits = gates_hit(current)
            if hits and not force:
                raise FatalError(f"submission {sub_id} was held because: {'; '.join(hits)}; "
                                 "approve with --force to merge anyway")
            approval = f"approved by {who}" + (f" with --force (gates: {'; '.join(hits)})" if hits else "")
            sub = self.store.claim(sub_id, (State.AWAITING_REVIEW,), detail=approval)
            if sub is None:
                raise FatalError(f"submission {sub_id} is {self.store.get(sub_id).state}; "
                                 "only awaiting_review can be approved")
            self.progress.submission(sub_id)
            try:
                return self._guarded(sub, lambda s: self._approve(s, who, approval))
            finally:
                self.progress.finished()
                self.release()

    def retry(self, sub_id: int, who: str, *, force: bool = False) -> Submission:
        """Validate a submission again now, whatever decided it before.

        A person's rejection (`queue reject`, a pull request closed) is
        reopened only with `force`, and the history says so.
        """
        self.local_root(self.store.get(sub_id))
        with self.store.hold(sub_id) as held:
            current = self.store.get(sub_id)
            if not held:
                return current  # another process is validating it
            refused = retry_refused(current, force=force)
            if refused:
                raise FatalError(refused)
            detail = f"retried by {who}"
            if current.state == State.REJECTED and not reopens(current):
                detail += f" with --force (it was rejected: {current.reason})"
            sub = self.store.claim(sub_id, (current.state,), detail=detail)
            if sub is None:
                return self.store.get(sub_id)
            return self._decide_claimed(sub)

    def _decide_claimed(self, sub: Submission) -> Submission:
        """Decide a submission this validator has claimed (and holds)."""
        self.progress.submission(sub.id)
        try:
            return self._guarded(sub, self._decide)
        finally:
            self.progress.finished()
            self.release()

    def recover(self, max_attempts: int = 3, repo: str | None = None) -> list[Submission]:
        """Requeue submissions abandoned mid-validation by a process that died.

        A submission whose merge already reached the target (its recorded
        merge intent is on the branch) is marked merged instead: a merge is
        never done twice. One interrupted too often is failed, with why.
        Only submissions whose hold is free are touched, so this is safe
        beside a running daemon or `errauto apply`. `repo`: of that one only.
        """
        out = []
        for sub in self.store.submissions((State.VALIDATING,), limit=10_000, repo=repo):
            recovered = self.recover_submission(sub.id, max_attempts)
            if recovered is not None:
                out.append(recovered)
        return out

    def recover_submission(self, sub_id: int, max_attempts: int = 3) -> Submission | None:
        """`recover` for one submission; None if it is not abandoned (or only a machine with a
        clone of its repository can tell whether its merge reached the target)."""
        with self.store.hold(sub_id) as held:
            if not held:
                return None  # someone alive is working on it
            current = self.store.get(sub_id)
            if current.state != State.VALIDATING:
                return None
            if current.merge_intent:
                try:
                    self.local_root(current)
                except NotHere:
                    return None
            return self._recover_one(current, max_attempts)

    def _recover_one(self, sub: Submission, max_attempts: int) -> Submission:
        cancelled = self.store.honour_cancel(sub.id)
        if cancelled is not None:
            return cancelled
        if sub.merge_intent and self._merged_already(sub):
            return record(self.store, sub.id, Outcome(
                State.MERGED, merged_commit=sub.merge_intent, route=sub.route or Route.AUTO_MERGE,
                reason=(sub.reason or "merged") + " (recorded after a restart)",
                detail="recovered: the merge had reached the target"))
        if sub.attempts >= max_attempts:
            return record(self.store, sub.id,
                          Outcome(State.FAILED, f"validation was interrupted {sub.attempts} times"))
        self.store.requeue(sub.id, "interrupted: the process validating it stopped")
        return self.store.get(sub.id)

    def _merged_already(self, sub: Submission) -> bool:
        assert sub.merge_intent
        try:
            repo = self._open(self.local_root(sub))
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
        """Run `work`; record what its exceptions mean. A person's cancel wins
        over whatever the validation was about to record."""
        try:
            return work(sub)
        except HoldLost as exc:
            logging.getLogger("errauto").warning("%s", exc)
            return self.store.get(sub.id)
        except Cancelled:
            return self._stopped(sub)
        except PatchRejected as exc:
            return self._record(sub, Outcome(State.REJECTED, exc.reason, route=Route.REJECTED))
        except FatalError as exc:
            # A user-fixable problem (bad config, missing target): not the patch's fault.
            if self._record(sub, Outcome(State.FAILED, str(exc))).state == State.FAILED:
                raise
            return self.store.get(sub.id)
        except BaseException as exc:
            what = f"internal error: {type(exc).__name__}"
            try:
                if isinstance(exc, Exception) and sub.attempts < self.retry_internal:
                    self.store.requeue(sub.id, f"{what}; will try again")
                else:
                    record(self.store, sub.id, Outcome(State.FAILED, what))
            except Cancelled:
                return self._stopped(sub)
            raise

    def _record(self, sub: Submission, outcome: Outcome) -> Submission:
        """Record `outcome`, unless a person cancelled the validation first."""
        try:
            return record(self.store, sub.id, outcome)
        except Cancelled:
            return self._stopped(sub)

    def _stopped(self, sub: Submission) -> Submission:
        """The validation stopped early: rejected if a person cancelled it, else
        (errauto is stopping) queued again, or failed once interrupted too often."""
        cancelled = self.store.honour_cancel(sub.id)
        if cancelled is not None:
            return cancelled
        if sub.attempts >= max(self.retry_internal, 1):
            return self._record(sub, Outcome(
                State.FAILED, f"validation was interrupted {sub.attempts} times: errauto stopped before it "
                          "finished (a check or step that outlasts the daemon's stop grace?)"))
        try:
            self.store.requeue(sub.id, f"interrupted: {STOPPING}")
        except Cancelled:
            return self._stopped(sub)
        return self.store.get(sub.id)

    def _stop_point(self, sub_id: int) -> None:
        """Between steps: stop here if the validation should not go on."""
        why = self._stop_reason(sub_id)
        if why is not None:
            raise Cancelled(why)

    def _stop_reason(self, sub_id: int) -> str | None:
        """Why the validation of `sub_id` should stop now, if it should."""
        if self.cancel is not None and self.cancel.is_set():
            return STOPPING
        return self.store.cancel_requested(sub_id)

    # -- the pipeline ------------------------------------------------------------

    def local_root(self, sub: Submission) -> str:
        """This machine's clone of the submission's repository: where it was recorded, or, on a
        database machines share, this machine's clone of the same push remote. NotHere if none."""
        if sub.remote is None or not self.store.shared:
            return sub.repo
        mine = self._clones.get(sub.remote)
        if mine is None:
            mine = self.store.clone_of(sub.remote) or (sub.repo if self._clone_here(sub) else None)
            if mine is None:
                raise NotHere(f"no clone of {sub.remote} is registered on this machine")
            self._clones[sub.remote] = mine
        return mine

    def _clone_here(self, sub: Submission) -> bool:
        """Whether the clone the submission was recorded in is this machine's (`errauto apply` in a
        clone errauto does not watch): recorded here, and still a clone of the same remote. Another
        machine's path is never used, even where this machine has the same path."""
        if sub.recorded_by != machine_name() or not os.path.isdir(sub.repo):
            return False
        try:
            repo = self._open(sub.repo)
            config = self._config(repo, sub)
            return remote_name(repo, config.push, config.remote_url) == sub.remote
        except FatalError:
            return False

    def _open(self, path: str) -> pygit2.Repository:
        repo = self._repos.get(path)
        if repo is None:
            repo = self._repos[path] = open_repo(path)
        return repo

    def _config(self, repo: pygit2.Repository, sub: Submission) -> Config:
        config = config_mod.load(repo, sub.target)
        config = self.config_hook(config) if self.config_hook else config
        sandbox.require(config.sandbox, bool(config.checks), config.source)
        return config

    def _decide(self, sub: Submission) -> Submission:
        repo = self._open(self.local_root(sub))
        config = self._config(repo, sub)
        if config.push and self.store.shared:
            merge.follow_remote(repo, config)  # other machines merged there since this clone looked
        revalidations = 0
        while True:
            with ExitStack() as locked:
                if revalidations:
                    # The target moved under us: validate again holding its merge
                    # lock, so the next merge is ours. Without it, other workers'
                    # merges can keep moving the target under a patch until it runs
                    # out of revalidations (seen with a burst of mergeable patches).
                    locked.enter_context(merge.target_lock(repo, config.target_ref,
                                                           merges_serial(self.store, sub, config)))
                    if config.push and self.store.shared:
                        # Other machines merged until this lock was ours; none can now.
                        merge.follow_remote(repo, config)
                done = self._decide_once(repo, config, sub, revalidations)
                if isinstance(done, Submission):
                    return done
                self.store.add_event(sub.id, "revalidate", done.why)
            revalidations += 1

    def _decide_once(self, repo: pygit2.Repository, config: Config, sub: Submission,
                     revalidations: int) -> Submission | Again:
        """Validate on the current tip, decide the route and carry it out."""
        tip = repo.references[config.target_ref].peel(pygit2.Commit)
        validation = self.validate(repo, config, sub, tip)
        decision = route.decide(validation.confidence, github=config.github is not None)
        return carry_out(self.store, self.progress, repo, config, sub, validation, decision,
                         revalidations=revalidations)

    def _approve(self, sub: Submission, who: str, approval: str) -> Submission:
        repo = self._open(self.local_root(sub))
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
                         if approved.get(r.name) == CheckStatus.PASSED and r.status != CheckStatus.PASSED]
                if worse:
                    return record(self.store, sub.id, Outcome(
                        State.AWAITING_REVIEW, route=Route.REVIEW,
                        reason=f"approved by {who}, but on the new tip of {config.target} "
                               f"{', '.join(worse)} no longer pass",
                        confidence=validation.confidence.value, base_commit=validation.base,
                        result_tree=validation.result_tree, explanation=validation.explanation()))
            done = merge_approved(self.store, self.progress, repo, config, sub, validation, who=who,
                                  approval=approval, may_again=revalidations < config.max_revalidations)
            if isinstance(done, Submission):
                return done
            revalidations += 1

    def validate(self, repo: pygit2.Repository, config: Config, sub: Submission,
                 tip: pygit2.Commit) -> Validation:
        self.release()
        clock = _Clock()
        self._stop_point(sub.id)
        self.progress.phase(f"applying on {config.target} ({str(tip.id)[:12]})")
        admitted = admit(repo, config, tip, self.store.read_patch(sub.patch_sha256), sub.source_detail or "patch")
        patch, notes = admitted.patch, list(admitted.notes)
        self._stop_point(sub.id)
        changed = sorted({p for f in patch.files() for p in f.paths()})
        trees = tuple(o.write_tree() for o in admitted.overlays)
        result = repo[trees[-1]]
        if not isinstance(result, pygit2.Tree):
            raise FatalError(f"the patch's result {trees[-1]} is not a tree")
        protected = guard.protected_changes(repo, tip.tree, result, changed, config.protected_paths)
        clock.lap("apply")
        attempt = self._next_attempt(sub.id)
        # The evidence is cached with the results: the rules that found it are part of the key.
        key = (str(tip.tree.id), sub.dedup_key, f"{config.checks_fingerprint()}:{evidence_rules()}")
        cached = self.store.cached_validation(*key) if self.use_cache and config.checks else None
        if cached is not None and cached[0] == str(trees[-1]):
            results = [checks_mod.CheckResult(**r) for r in cached[1]["results"]]
            baselines = dict(cached[1]["baselines"])
            evidence = Evidence.from_json(cached[1].get("evidence"))
            notes = [*notes, "check results reused from an identical validation (same base, "
                             "patch and checks)"]
            self.progress.phase("reusing the check results of an identical validation")
            clock.lap("cache")
        else:
            results, baselines, found = self._run_checks(repo, config, sub, tip, admitted.overlays[-1], attempt, clock)
            self._stop_point(sub.id)
            evidence = found.evidence(repo, config, str(tip.tree.id), str(trees[-1]))
            clock.lap("evidence")
            flakes = [(f.id, f.runs, f.failures) for ev in evidence.checks.values() for f in ev.flaky]
            if flakes:
                self.store.record_flaky(sub.repo, sub.id, flakes)
            if config.checks:
                self.store.cache_validation(*key, str(trees[-1]), {
                    "results": [dataclasses.asdict(r) for r in results], "baselines": baselines,
                    "evidence": evidence.to_json()})
        self.store.record_checks(sub.id, attempt, str(tip.id), [
            CheckRow(r.name, attempt, r.status, r.exit_code, r.duration,
                     score.check_score(c, r, baselines.get(c.name))[0], c.weight, r.detail,
                     r.log_path, str(tip.id))
            for c, r in zip(config.checks, results, strict=True)])
        notes += sandbox.notes(config)
        conf = score.compute(config, results, baselines=baselines, protected=protected,
                             review_only=admitted.review_only, notes=notes, evidence=evidence)
        clock.lap("score")
        return Validation(str(tip.id), patch, trees, tuple(results), conf, attempt, dict(clock.phases),
                          evidence)

    def _reapply(self, repo: pygit2.Repository, config: Config, sub: Submission,
                 tip: pygit2.Commit) -> Validation:
        """The trees of an already-validated submission on its unchanged base."""
        admitted = admit(repo, config, tip, self.store.read_patch(sub.patch_sha256), sub.source_detail or "patch")
        trees = tuple(o.write_tree() for o in admitted.overlays)
        if str(trees[-1]) != sub.result_tree:
            raise FatalError(f"submission {sub.id} no longer produces the tree it was validated with")
        conf = score.compute(config, (), review_only=admitted.review_only, notes=admitted.notes)
        return Validation(str(tip.id), admitted.patch, trees, (), conf, 0, {})

    def _run_checks(self, repo: pygit2.Repository, config: Config, sub: Submission,
                    tip: pygit2.Commit, overlay: Overlay, attempt: int, clock: _Clock,
                    ) -> tuple[list[checks_mod.CheckResult], dict[str, float | None], Found]:
        log_dir = paths.check_logs_dir() / str(sub.id)
        baselines: dict[str, float | None] = {}
        found = Found()
        if not config.checks:
            return [], baselines, found
        self.progress.phase("preparing worktree")
        pool = Pool(repo, self.pool_size, self._repos)
        stack = ExitStack()
        slot = stack.enter_context(pool.acquire(tip))
        stack.callback(slot.clean)  # runs before the slot is unlocked
        self._pending = stack
        stop = functools.partial(self._stop_reason, sub.id)
        view = slot.view()
        try:
            for check in config.checks:
                if check.kind != "coverage" and check.junit is None:
                    continue
                fp = config.checks_fingerprint()
                known, value = self.store.baseline(sub.repo, str(tip.tree.id), check.name, fp)
                tests = self.store.baseline_tests(sub.repo, str(tip.tree.id), check.name, fp)
                if not known or (check.junit is not None and tests is None):
                    self._stop_point(sub.id)
                    base_result = self._run(config, check, slot.path, log_dir / f"{attempt}-{check.name}-base.log",
                                            stop, view, label=f"{check.name} (base)")
                    value = base_result.value
                    tests = found.base_report(slot.path, check)
                    self.store.set_baseline(sub.repo, str(tip.tree.id), check.name, fp, value, tests)
                    slot.clean()
                baselines[check.name] = value
                found.bases[check.name] = tests
            slot.write(overlay)
            clock.lap("worktree")
            self.progress.phase("running checks")
            results = []
            for check in config.checks:
                self._stop_point(sub.id)
                result = self._run(config, check, slot.path, log_dir / f"{attempt}-{check.name}.log", stop, view)
                results.append(result)
                found.read(slot.path, check, result,
                           functools.partial(self._rerun, config, check, slot.path, log_dir, attempt, stop, view))
            clock.lap("checks")
        except Cancelled:
            raise  # the worktree is cleaned once the rejection or requeue is recorded
        except BaseException:
            self.release()
            raise
        return results, baselines, found

    def _rerun(self, config: Config, check: config_mod.CheckConfig, cwd: Path, log_dir: Path, attempt: int,
               stop: checks_mod.CancelPoll, view: sandbox.View, command: tuple[str, ...],
               k: int) -> checks_mod.CheckResult:
        """`check` again with `command` (its newly failing tests named), the k-th time."""
        return self._run(config, dataclasses.replace(check, command=command), cwd,
                         log_dir / f"{attempt}-{check.name}-rerun{k}.log", stop, view,
                         label=f"{check.name} (run again {k})")

    def _run(self, config: Config, check: config_mod.CheckConfig, cwd: Path, log_path: Path,
             stop: checks_mod.CancelPoll, view: sandbox.View, *,
             label: str | None = None) -> checks_mod.CheckResult:
        """One check in the worktree, its old reports removed first (a report
        left in the tree must not stand in for one the check did not write)."""
        for rel in (check.junit, check.line_data):
            stale = cwd / rel if rel is not None else None
            if stale is not None and (stale.is_symlink() or stale.is_file()):
                stale.unlink()
        result = run_observed(config, check, cwd, log_path, self.progress, stop, label=label, view=view)
        if result.status == CheckStatus.CANCELLED:
            raise Cancelled(result.detail.removeprefix("cancelled: "))
        return result

    def _next_attempt(self, sub_id: int) -> int:
        return self.store.next_attempt(sub_id)


def run_observed(config: Config, check: config_mod.CheckConfig, cwd: Path, log_path: Path,
                 progress: Progress, cancel: checks_mod.CancelPoll | None = None, *,
                 label: str | None = None, view: sandbox.View) -> checks_mod.CheckResult:
    """One check, run by `checks.run_check` in its scrubbed environment and in the
    sandbox the configuration asks for (`view`: what it may see), told to `progress`."""
    name = label or check.name
    confined = sandbox.for_check(config, check, view)
    progress.check_started(name)
    result = checks_mod.run_check(check, cwd, log_path, checks_mod.check_env(config.secrets(), check.env),
                                  cancel, confined)
    progress.check_finished(name, result.status, result.duration, result.detail)
    return result


def gates_hit(sub: Submission) -> list[str]:
    """Why a person's approval of `sub` needs --force: the gates its last
    validation hit, and what the guard allows only a person to decide."""
    explanation = sub.explanation or {}
    # Explanations recorded before `gates_hit` existed: every gate counts.
    hits = explanation.get("gates_hit", explanation.get("gates", []))
    return [*hits, *explanation.get("review_only", [])]


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
