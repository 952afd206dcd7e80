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
from pathlib import Path
from typing import Any

import pygit2

from errauto_daemon import checks as checks_mod
from errauto_daemon import config as config_mod
from errauto_daemon import github, guard, merge, paths, route, score
from errauto_daemon.config import Config
from errauto_daemon.errors import Cancelled, FatalError, PatchRejected
from errauto_daemon.intake import reopens
from errauto_daemon.patchapply import Overlay, apply_patch
from errauto_daemon.patchfile import Patch, parse
from errauto_daemon.progress import SILENT, Progress
from errauto_daemon.repo import open_repo
from errauto_daemon.store import DECIDED, CheckRow, Store, Submission
from errauto_daemon.workspace import Pool

ConfigHook = Callable[[Config], Config]

# What `queue retry` may validate again.
RETRYABLE = ("queued", "rejected", "failed", "awaiting_review")


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
                 use_cache: bool = True, retry_internal: int = 0,
                 progress: Progress | None = None) -> None:
        """`retry_internal`: how many attempts an internal error may take before
        the submission fails (the daemon retries; a CLI run reports at once).
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
            return self._decide_claimed(sub)

    def approve(self, sub_id: int, who: str, *, force: bool = False) -> Submission:
        """A person approved a held submission: merge it, with the same CAS rules.

        A submission held because it hit a gate (a gate check failed, it
        touches protected paths, the guard allows review only) is merged only
        with `force`, and the history says so.
        """
        with self.store.hold(sub_id) as held:
            current = self.store.get(sub_id)
            if not held or current.state != "awaiting_review":
                state = "being validated" if not held else current.state
                raise FatalError(f"submission {sub_id} is {state}; only awaiting_review can be approved")
            hits = gates_hit(current)
            if hits and not force:
                raise FatalError(f"submission {sub_id} was held because: {'; '.join(hits)}; "
                                 "approve with --force to merge anyway")
            approval = f"approved by {who}" + (f" with --force (gates: {'; '.join(hits)})" if hits else "")
            sub = self.store.claim(sub_id, ("awaiting_review",), detail=approval)
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
        with self.store.hold(sub_id) as held:
            current = self.store.get(sub_id)
            if not held:
                return current  # another process is validating it
            if current.state not in RETRYABLE:
                raise FatalError(f"submission {sub_id} is {current.state}; "
                                 f"only {', '.join(RETRYABLE)} can be retried")
            detail = f"retried by {who}"
            if current.state == "rejected" and not reopens(current):
                if not force:
                    raise FatalError(f"submission {sub_id} was rejected by a person ({current.reason}); "
                                     "retry with --force to validate it again")
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
        for sub in self.store.submissions(("validating",), limit=10_000, repo=repo):
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
            what = f"internal error: {type(exc).__name__}"
            if isinstance(exc, Exception) and sub.attempts < self.retry_internal:
                self.store.requeue(sub.id, f"{what}; will try again")
            else:
                self.store.transition(sub.id, "failed", reason=what)
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
            if revalidations:
                # The target moved under us: validate again holding its merge
                # lock, so the next merge is ours. Without it, other workers'
                # merges can keep moving the target under a patch until it runs
                # out of revalidations (seen with a burst of mergeable patches).
                with merge.target_lock(repo, config.target_ref):
                    done = self._decide_once(repo, config, sub, revalidations)
            else:
                done = self._decide_once(repo, config, sub, revalidations)
            if isinstance(done, Submission):
                return done
            revalidations += 1

    def _decide_once(self, repo: pygit2.Repository, config: Config, sub: Submission,
                     revalidations: int) -> Submission | None:
        """Validate on the current tip and carry out the route; None: validate again."""
        tip = repo.references[config.target_ref].peel(pygit2.Commit)
        validation = self.validate(repo, config, sub, tip)
        conf = validation.confidence
        decision = route.decide(conf, github=config.github is not None)
        explanation = self._explanation(validation, decision)
        fields: dict[str, Any] = dict(
            confidence=conf.value, explanation=explanation, base_commit=validation.base,
            result_tree=str(validation.trees[-1]))
        if decision.route == route.AUTO_MERGE and config.github and config.github.merge_via_pr:
            merged = self._merge_via_pr(repo, config, sub, validation, decision, fields)
            if isinstance(merged, Submission):
                return merged
            if revalidations + 1 > config.max_revalidations:
                return self._github_failed(sub, decision, github.GitHubError(
                    f"{merged}: validated {revalidations + 1} times without a chance to merge"), fields)
            self.store.add_event(sub.id, "revalidate", merged)
            return None
        if decision.route == route.AUTO_MERGE:
            self.progress.phase("merging")
            started = time.perf_counter()
            outcome, rewrites = self._merge(repo, config, sub, validation)
            explanation["timings"]["merge"] = round(time.perf_counter() - started, 6)
            if outcome.status == merge.MERGED:
                reason = outcome.reason or decision.reason
                return self.store.transition(
                    sub.id, "merged", route=route.AUTO_MERGE, merged_commit=outcome.commit,
                    reason=f"{reason}; {rewrites}" if rewrites else reason, **fields)
            if outcome.status == merge.MOVED:
                if revalidations + 1 > config.max_revalidations:
                    return self.store.transition(
                        sub.id, "awaiting_review", route=route.REVIEW,
                        reason=f"{config.target} kept moving: validated {revalidations + 1} times "
                               "without a chance to merge", **fields)
                self.store.add_event(sub.id, "revalidate",
                                     f"{config.target} moved to {str(outcome.tip)[:12]}")
                return None
            return self.store.transition(
                sub.id, "awaiting_review", route=route.REVIEW,
                reason=f"auto-merge held: {outcome.reason}", **fields)
        if decision.route == route.PULL_REQUEST:
            return self._pull_request(repo, config, sub, validation, decision, fields)
        return self.store.transition(sub.id, "awaiting_review", route=route.REVIEW,
                                     reason=decision.reason, **fields)

    # -- the GitHub route ----------------------------------------------------------

    def _pull_request(self, repo: pygit2.Repository, config: Config, sub: Submission,
                      validation: Validation, decision: route.Decision,
                      fields: dict[str, Any]) -> Submission:
        """Push errauto/<id>, open (or reuse) its pull request, enable auto-merge."""
        gh = config.github
        assert gh is not None
        self.progress.phase("opening a pull request")
        started = time.perf_counter()
        try:
            with github.connect(gh) as client:
                client.check_access()
                github.remote_target(repo, gh.remote, config.target, validation.base)
                pr, head, verb = self._publish(
                    repo, config, sub, validation, client, fields,
                    merged_by=github.BY_AUTO_MERGE if decision.pr_auto_merge else github.BY_PERSON)
                if not decision.pr_auto_merge:
                    state = github.OPEN
                    why = f"pull request #{pr.number} {verb} without auto-merge: a person must merge it"
                else:
                    try:
                        client.enable_auto_merge(pr, gh.merge_method, head)
                        state, why = github.AUTO_MERGE, f"pull request #{pr.number} {verb} with auto-merge"
                    except github.GitHubError as exc:
                        state = github.AUTO_MERGE_FAILED
                        why = (f"pull request #{pr.number} {verb}, but auto-merge could not be "
                               f"enabled: {exc.reason}")
                        self.store.add_event(sub.id, "alert", f"submission {sub.id}: {why}",
                                             alert="auto_merge_failed")
        except github.GitHubError as exc:
            return self._github_failed(sub, decision, exc, fields)
        fields["explanation"]["timings"]["github"] = round(time.perf_counter() - started, 6)
        return self.store.transition(
            sub.id, "pr_open", route=route.PULL_REQUEST, reason=f"{decision.reason}; {why}",
            pr_url=pr.url, pr_number=pr.number, pr_state=state, **fields)

    def _merge_via_pr(self, repo: pygit2.Repository, config: Config, sub: Submission,
                      validation: Validation, decision: route.Decision,
                      fields: dict[str, Any]) -> Submission | str:
        """auto_merge with `github.merge_via_pr`: open the pull request and merge it
        at once, the validated head pinned.

        Returns the decided submission, or why to validate again: the remote
        target moved (the local one is fast-forwarded to it first), or GitHub
        answered 409 because the pull request's head is not the validated commit.
        """
        gh = config.github
        assert gh is not None
        self.progress.phase("merging through a pull request")
        started = time.perf_counter()
        try:
            with github.connect(gh) as client:
                earlier = self._merged_earlier(client, sub)
                if earlier is not None:
                    return self.store.transition(
                        sub.id, "merged", route=route.AUTO_MERGE, merged_commit=earlier.merge_commit,
                        pr_state=github.MERGED, reason=f"pull request #{earlier.number} was merged "
                                                       "by an earlier attempt", **fields)
                client.check_access()
                # Serialised with every other merge into this target: two
                # pull requests validated on one base are never merged together.
                with merge.target_lock(repo, config.target_ref):
                    tip = github.remote_target(repo, gh.remote, config.target, validation.base)
                    if tip != validation.base:
                        caught_up = merge.fast_forward(repo, config, validation.base, tip,
                                                       f"errauto: fast-forward to {gh.remote}")
                        if caught_up.status == merge.HELD:
                            raise github.GitHubError(f"{gh.remote}/{config.target} moved, and {caught_up.reason}")
                        return f"{gh.remote}/{config.target} moved to {tip[:12]}"
                    pr, head, _ = self._publish(repo, config, sub, validation, client, fields,
                                                merged_by=github.AT_ONCE)
                    try:
                        merged = client.merge(pr, head, gh.merge_method)
                    except github.HeadMoved as exc:
                        return f"the head of pull request #{pr.number} moved ({exc.reason})"
                    except github.GitHubError as exc:
                        return self._left_open(client, gh, sub, decision, pr, head, exc, fields)
                    fields["explanation"]["timings"]["github"] = round(time.perf_counter() - started, 6)
                    # Recorded before the local target follows: after a crash in
                    # between, the patch would look "already applied" locally.
                    done = self.store.transition(
                        sub.id, "merged", route=route.AUTO_MERGE, merged_commit=merged,
                        reason=f"{decision.reason}; merged through pull request #{pr.number}",
                        pr_url=pr.url, pr_number=pr.number, pr_state=github.MERGED, **fields)
                    follow = self._follow_merge(repo, config, validation.base, merged)
                    if follow:
                        self.store.set_fields(sub.id, reason=f"{done.reason}; {follow}")
                        done = self.store.get(sub.id)
                    return done
        except github.GitHubError as exc:
            return self._github_failed(sub, decision, exc, fields)

    def _publish(self, repo: pygit2.Repository, config: Config, sub: Submission,
                 validation: Validation, client: github.Client, fields: dict[str, Any], *,
                 merged_by: str) -> tuple[github.PullRequest, str, str]:
        """Push the validated commit to errauto/<id>; find or open its pull request.

        Returns the pull request, the pushed head and "opened" or "updated".
        """
        gh = config.github
        assert gh is not None
        head = str(merge.build_commits(
            repo, pygit2.Oid(hex=validation.base), validation.patch.commits, validation.trees,
            submission_id=sub.id, fallback_message=sub.title + "\n"))
        branch = github.branch_name(sub.id)
        github.push_branch(repo, gh.remote, head, branch)
        title = github.pull_request_title(sub)
        body = github.pull_request_body(
            sub, fields["explanation"], github.files_changed(repo, validation.base, str(validation.trees[-1])),
            merged_by=merged_by)
        pr, reused = github.open_pull_request(client, branch=branch, base=config.target, title=title, body=body)
        # Recorded at once: from here on the submission has an open pull request.
        self.store.set_fields(sub.id, pr_url=pr.url, pr_number=pr.number, pr_state=github.OPEN)
        problems = []
        if reused:
            try:
                client.update(pr, title, body)
            except github.GitHubError as exc:
                problems.append(exc.reason)
        try:
            client.add_labels(pr, gh.labels)
        except github.GitHubError as exc:
            problems.append(exc.reason)
        for problem in problems:
            self.store.add_event(sub.id, "alert", f"submission {sub.id}: {problem}", alert="pr_failed")
        return pr, head, "updated" if reused else "opened"

    def _merged_earlier(self, client: github.Client, sub: Submission) -> github.PullRequest | None:
        """The submission's pull request, if an attempt that was interrupted merged it."""
        if sub.pr_number is None or sub.pr_state not in (github.OPEN, github.AUTO_MERGE,
                                                          github.AUTO_MERGE_FAILED):
            return None
        pr = client.get(sub.pr_number)
        return pr if pr.merged and pr.head == github.branch_name(sub.id) else None

    def _left_open(self, client: github.Client, gh: config_mod.GithubConfig, sub: Submission,
                   decision: route.Decision, pr: github.PullRequest, head: str,
                   failure: github.GitHubError, fields: dict[str, Any]) -> Submission:
        """GitHub would not merge at once (required checks or reviews, a limit):
        let it merge the validated head when its requirements are met."""
        why = f"merging pull request #{pr.number} at once failed ({failure.reason})"
        try:
            client.enable_auto_merge(pr, gh.merge_method, head)
            state, why = github.AUTO_MERGE, why + "; auto-merge enabled instead"
        except github.GitHubError as exc:
            state, why = github.AUTO_MERGE_FAILED, why + f", and auto-merge could not be enabled ({exc.reason})"
        self.store.add_event(sub.id, "alert", f"submission {sub.id}: {why}", alert="auto_merge_failed")
        return self.store.transition(
            sub.id, "pr_open", route=route.PULL_REQUEST, reason=f"{decision.reason}; {why}",
            pr_url=pr.url, pr_number=pr.number, pr_state=state, **fields)

    def _follow_merge(self, repo: pygit2.Repository, config: Config, base: str, merged: str) -> str | None:
        """Fast-forward the local target to GitHub's merge; None, or why it did not follow."""
        assert config.github is not None
        try:
            github.fetch(repo, config.github.remote, config.target)
        except github.GitHubError as exc:
            return f"local {config.target} did not follow: {exc.reason}"
        new = pygit2.Oid(hex=merged)
        if new not in repo or not repo.descendant_of(new, pygit2.Oid(hex=base)):
            return f"local {config.target} did not follow: the merge is not on {config.github.remote}"
        outcome = merge.fast_forward(repo, config, base, merged, f"errauto: fast-forward to {config.github.remote}")
        if outcome.status == merge.MERGED:
            return None
        return f"local {config.target} did not follow: {outcome.reason or 'it moved'}"

    def _github_failed(self, sub: Submission, decision: route.Decision, failure: github.GitHubError,
                       fields: dict[str, Any]) -> Submission:
        """The GitHub route failed: alert, and hold it; never lost.

        With a pull request already open it stays `pr_open` (people decide
        there, and it is followed); otherwise it waits in the review queue.
        """
        self.store.add_event(sub.id, "alert", f"submission {sub.id}: GitHub route failed: {failure.reason}",
                             alert="pr_failed")
        current = self.store.get(sub.id)
        if current.pr_number is not None and current.pr_state in (
                github.OPEN, github.AUTO_MERGE, github.AUTO_MERGE_FAILED):
            return self.store.transition(
                sub.id, "pr_open", route=route.PULL_REQUEST,
                reason=f"{decision.reason}; pull request #{current.pr_number} left open: {failure.reason}",
                **fields)
        return self.store.transition(
            sub.id, "awaiting_review", route=route.REVIEW,
            reason=f"{decision.reason}; GitHub route failed, held for review: {failure.reason}", **fields)

    def _approve(self, sub: Submission, who: str, approval: str) -> Submission:
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
            self.progress.phase("merging")
            outcome, rewrites = self._merge(repo, config, sub, validation)
            if outcome.status == merge.MERGED:
                return self.store.transition(
                    sub.id, "merged", merged_commit=outcome.commit, base_commit=validation.base,
                    reason=f"approved by {who}" + "".join(f"; {r}" for r in (outcome.reason, rewrites) if r),
                    detail=approval)
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
        self.progress.phase(f"applying on {config.target} ({str(tip.id)[:12]})")
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
            self.progress.phase("reusing the check results of an identical validation")
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
        self.progress.phase("preparing worktree")
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
                    base_result = run_observed(
                        config, check, slot.path, log_dir / f"{attempt}-{check.name}-base.log",
                        self.progress, self.cancel, label=f"{check.name} (base)")
                    value = base_result.value
                    self.store.set_baseline(sub.repo, str(tip.tree.id), check.name, fp, value)
                    slot.clean()
                baselines[check.name] = value
            slot.write(overlay)
            clock.lap("worktree")
            self.progress.phase("running checks")
            results = [
                run_observed(config, check, slot.path, log_dir / f"{attempt}-{check.name}.log",
                             self.progress, self.cancel)
                for check in config.checks
            ]
            clock.lap("checks")
        except BaseException:
            self.release()
            raise
        return results, baselines

    def _merge(self, repo: pygit2.Repository, config: Config, sub: Submission,
               validation: Validation) -> tuple[merge.MergeOutcome, str]:
        """Merge; returns the outcome and, for a merge that rewrote named
        commits, what replaced what (recorded as `replaced` events)."""
        commits = validation.patch.commits
        # The pushed commits themselves when they are exactly what was
        # validated, on the base it was validated on: a fast-forward.
        new = merge.pushed_tip(repo, validation.base, commits, validation.trees)
        rewrites: list[tuple[str, str]] = []
        if new is None:
            new = merge.build_commits(
                repo, pygit2.Oid(hex=validation.base), commits, validation.trees,
                submission_id=sub.id, fallback_message=sub.title + "\n")
            rewrites = merge.replaced(repo, commits, new)
        # Written before the ref can move: after a crash, recovery finds the
        # commit on the target and records the merge instead of redoing it.
        self.store.set_fields(sub.id, merge_intent=str(new))
        outcome = merge.merge(repo, config, validation.base, str(new),
                              f"errauto: merge submission {sub.id} ({sub.title})", submission_id=sub.id)
        if outcome.status != merge.MERGED or not rewrites:
            return outcome, ""
        for old, mine in rewrites:
            self.store.add_event(sub.id, "replaced", f"replaces {old} with {mine}")
        return outcome, "; ".join(f"replaces {old} with {mine}" for old, mine in rewrites)

    def _next_attempt(self, sub_id: int) -> int:
        return self.store.next_attempt(sub_id)

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


def run_observed(config: Config, check: config_mod.CheckConfig, cwd: Path, log_path: Path,
                 progress: Progress, cancel: threading.Event | None = None, *,
                 label: str | None = None) -> checks_mod.CheckResult:
    """One check, run by `checks.run_check` in its scrubbed environment, told to `progress`."""
    name = label or check.name
    progress.check_started(name)
    result = checks_mod.run_check(check, cwd, log_path, checks_mod.check_env(config.secrets(), check.env),
                                  cancel)
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
