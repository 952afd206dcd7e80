"""Carrying out a validated patch's route: review, merge, or a pull request.

    review        awaiting_review, with the explanation
    auto_merge    commit on the validated base, CAS the ref (merge.py);
                  with `github.merge_via_pr`: open the pull request and merge
                  it at once, the validated head pinned
    pull_request  push errauto/<id>, open or reuse its pull request, labels,
                  auto-merge unless a gate hit

What it decides is an `Outcome`, recorded by `record` (the one place a
decision becomes a state transition), or `Again`: the target moved, validate
again on its new tip (the caller does, at most `max_revalidations` times).
Facts learnt on the way (the merge intent, an open pull request, alerts) are
recorded as they happen, so a crash half-way loses nothing.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pygit2

from errauto_daemon import github, merge, route
from errauto_daemon.config import Config
from errauto_daemon.domain import PRState, Route, State
from errauto_daemon.progress import Progress
from errauto_daemon.store import Store, Submission
from errauto_daemon.validation import Validation

_LEFT_OPEN = (PRState.OPEN, PRState.AUTO_MERGE, PRState.AUTO_MERGE_FAILED)


@dataclass(frozen=True)
class Outcome:
    """A decision about a submission: one state transition. A field left None
    is not written (the submission keeps what it has)."""
    state: State
    reason: str
    route: Route | None = None
    detail: str | None = None  # the transition event's detail
    confidence: float | None = None
    explanation: Mapping[str, Any] | None = None
    base_commit: str | None = None
    result_tree: str | None = None
    merged_commit: str | None = None
    pr_url: str | None = None
    pr_number: int | None = None
    pr_state: PRState | None = None

    def columns(self) -> dict[str, Any]:
        """The submission's columns this outcome sets."""
        given = {"route": self.route, "confidence": self.confidence, "base_commit": self.base_commit,
                 "result_tree": self.result_tree, "merged_commit": self.merged_commit,
                 "pr_url": self.pr_url, "pr_number": self.pr_number, "pr_state": self.pr_state,
                 "explanation": None if self.explanation is None else dict(self.explanation)}
        return {"reason": self.reason, **{k: v for k, v in given.items() if v is not None}}


@dataclass(frozen=True)
class Again:
    """The target moved before the route could be carried out: validate again."""
    why: str  # the `revalidate` event's detail


def record(store: Store, sub_id: int, outcome: Outcome) -> Submission:
    """Record a decision: the state, its columns and its event (and alert), atomically."""
    return store.transition(sub_id, outcome.state, detail=outcome.detail, **outcome.columns())


def carry_out(store: Store, progress: Progress, repo: pygit2.Repository, config: Config, sub: Submission,
              validation: Validation, decision: route.Decision, *, revalidations: int) -> Submission | Again:
    """Carry out `decision` for `validation` of `sub` and record the outcome.

    `revalidations`: how often the patch was validated again already; once
    that reaches the configuration's bound, a moved target holds it instead.
    """
    carrying = _Carrying(store, progress, repo, config, sub, validation, decision,
                         last_try=revalidations + 1 > config.max_revalidations, tries=revalidations + 1)
    if decision.route == Route.AUTO_MERGE and config.github and config.github.merge_via_pr:
        return carrying.merge_via_pr()
    if decision.route == Route.AUTO_MERGE:
        return carrying.auto_merge()
    if decision.route == Route.PULL_REQUEST:
        return carrying.pull_request()
    return carrying.record(State.AWAITING_REVIEW, Route.REVIEW, decision.reason)


def merge_approved(store: Store, progress: Progress, repo: pygit2.Repository, config: Config,
                   sub: Submission, validation: Validation, *, who: str, approval: str,
                   may_again: bool) -> Submission | Again:
    """A person approved `sub`: merge `validation` and record it, keeping the
    route it had. `may_again`: a moved target means validate again (else held)."""
    progress.phase("merging")
    outcome, rewrites = merge_validated(store, repo, config, sub, validation)
    if outcome.status == merge.MergeStatus.MERGED:
        return record(store, sub.id, Outcome(
            State.MERGED, merged_commit=outcome.commit, base_commit=validation.base,
            reason=f"approved by {who}" + "".join(f"; {r}" for r in (outcome.reason, rewrites) if r),
            detail=approval))
    if outcome.status == merge.MergeStatus.MOVED and may_again:
        return Again(f"{config.target} moved to {str(outcome.tip)[:12]}")
    held = outcome.reason or f"{config.target} kept moving"
    return record(store, sub.id, Outcome(State.AWAITING_REVIEW, f"approved by {who}, but the merge was held: {held}"))


def merge_validated(store: Store, repo: pygit2.Repository, config: Config, sub: Submission,
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
    # commit on the target and records the merge instead of redoing it. It
    # is also the point after which a person's reject comes too late
    # (Cancelled here if theirs came first).
    store.begin_carrying_out(sub.id, "a merge", merge_intent=str(new))
    outcome = merge.merge(repo, config, validation.base, str(new),
                          f"errauto: merge submission {sub.id} ({sub.title})", submission_id=sub.id,
                          across=merges_serial(store, sub, config))
    if outcome.status != merge.MergeStatus.MERGED or not rewrites:
        return outcome, ""
    for old, mine in rewrites:
        store.add_event(sub.id, "replaced", f"replaces {old} with {mine}")
    return outcome, "; ".join(f"replaces {old} with {mine}" for old, mine in rewrites)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 6)


def merges_serial(store: Store, sub: Submission, config: Config) -> AbstractContextManager[None] | None:
    """The lock of merges into the submission's target on every machine of a shared state: its
    repository's push remote and target name it. None on one machine (the file lock suffices)."""
    if not store.shared or sub.remote is None:
        return None
    return store.serial(f"merge {sub.remote} {config.target_ref}")


@dataclass(frozen=True)
class _Carrying:
    """One route being carried out."""
    store: Store
    progress: Progress
    repo: pygit2.Repository
    config: Config
    sub: Submission
    validation: Validation
    decision: route.Decision
    last_try: bool  # a moved target holds the patch instead of validating it again
    tries: int  # validations so far, this one included

    def record(self, state: State, route_: Route, reason: str, *, timings: Mapping[str, float] | None = None,
               pr: github.PullRequest | None = None, pr_state: PRState | None = None,
               merged_commit: str | None = None) -> Submission:
        """Record an outcome with everything the validation found."""
        v = self.validation
        return record(self.store, self.sub.id, Outcome(
            state, reason, route=route_, confidence=v.confidence.value,
            explanation=v.explanation(self.decision, **(timings or {})), base_commit=v.base,
            result_tree=v.result_tree, merged_commit=merged_commit, pr_state=pr_state,
            pr_url=pr.url if pr else None, pr_number=pr.number if pr else None))

    def alert(self, kind: str, what: str) -> None:
        self.store.add_event(self.sub.id, "alert", f"submission {self.sub.id}: {what}", alert=kind)

    # -- merging here ----------------------------------------------------------------

    def auto_merge(self) -> Submission | Again:
        self.progress.phase("merging")
        started = time.perf_counter()
        outcome, rewrites = merge_validated(self.store, self.repo, self.config, self.sub, self.validation)
        timings = {"merge": _since(started)}
        if outcome.status == merge.MergeStatus.MERGED:
            reason = outcome.reason or self.decision.reason
            return self.record(State.MERGED, Route.AUTO_MERGE, f"{reason}; {rewrites}" if rewrites else reason,
                               merged_commit=outcome.commit, timings=timings)
        if outcome.status == merge.MergeStatus.MOVED:
            if self.last_try:
                return self.record(State.AWAITING_REVIEW, Route.REVIEW,
                                   f"{self.config.target} kept moving: validated {self.tries} times "
                                   "without a chance to merge", timings=timings)
            return Again(f"{self.config.target} moved to {str(outcome.tip)[:12]}")
        return self.record(State.AWAITING_REVIEW, Route.REVIEW, f"auto-merge held: {outcome.reason}", timings=timings)

    # -- the GitHub route ------------------------------------------------------------

    def pull_request(self) -> Submission:
        """Push errauto/<id>, open (or reuse) its pull request, enable auto-merge."""
        gh = self.config.github
        assert gh is not None
        self.progress.phase("opening a pull request")
        started = time.perf_counter()
        try:
            with github.connect(gh) as client:
                client.check_access()
                github.remote_target(self.repo, gh.remote, self.config.target, self.validation.base)
                auto = self.decision.pr_auto_merge
                pr, head, verb = self.publish(client, merged_by=github.BY_AUTO_MERGE if auto else github.BY_PERSON)
                if auto:
                    state, why = self.enable_auto_merge(client, pr, head, verb)
                else:
                    state = PRState.OPEN
                    why = f"pull request #{pr.number} {verb} without auto-merge: a person must merge it"
        except github.GitHubError as exc:
            return self.github_failed(exc)
        return self.record(State.PR_OPEN, Route.PULL_REQUEST, f"{self.decision.reason}; {why}",
                           pr=pr, pr_state=state, timings={"github": _since(started)})

    def enable_auto_merge(self, client: github.Client, pr: github.PullRequest, head: str,
                          verb: str) -> tuple[PRState, str]:
        """The pull request's state and why, once auto-merge is (not) enabled."""
        assert self.config.github is not None
        try:
            client.enable_auto_merge(pr, self.config.github.merge_method, head)
            return PRState.AUTO_MERGE, f"pull request #{pr.number} {verb} with auto-merge"
        except github.GitHubError as exc:
            why = f"pull request #{pr.number} {verb}, but auto-merge could not be enabled: {exc.reason}"
            self.alert("auto_merge_failed", why)
            return PRState.AUTO_MERGE_FAILED, why

    def merge_via_pr(self) -> Submission | Again:
        """auto_merge with `github.merge_via_pr`: open the pull request and merge it
        at once, the validated head pinned.

        Again when the remote target moved (the local one is fast-forwarded to
        it first), or GitHub answered 409 because the pull request's head is
        not the validated commit.
        """
        gh = self.config.github
        assert gh is not None
        self.progress.phase("merging through a pull request")
        started = time.perf_counter()
        try:
            with github.connect(gh) as client:
                earlier = self.merged_earlier(client)
                if earlier is not None:
                    return self.record(State.MERGED, Route.AUTO_MERGE,
                                       f"pull request #{earlier.number} was merged by an earlier attempt",
                                       merged_commit=earlier.merge_commit, pr_state=PRState.MERGED)
                client.check_access()
                # Serialised with every other merge into this target: two
                # pull requests validated on one base are never merged together.
                with merge.target_lock(self.repo, self.config.target_ref,
                                       merges_serial(self.store, self.sub, self.config)):
                    done = self.merge_at_once(client, started)
        except github.GitHubError as exc:
            return self.github_failed(exc)
        if isinstance(done, Again) and self.last_try:
            return self.github_failed(github.GitHubError(
                f"{done.why}: validated {self.tries} times without a chance to merge"))
        return done

    def merge_at_once(self, client: github.Client, started: float) -> Submission | Again:
        """Under the target's merge lock: publish and merge, the head pinned."""
        gh, config, base = self.config.github, self.config, self.validation.base
        assert gh is not None
        tip = github.remote_target(self.repo, gh.remote, config.target, base)
        if tip != base:
            caught_up = merge.fast_forward(self.repo, config, base, tip, f"errauto: fast-forward to {gh.remote}")
            if caught_up.status == merge.MergeStatus.HELD:
                raise github.GitHubError(f"{gh.remote}/{config.target} moved, and {caught_up.reason}")
            return Again(f"{gh.remote}/{config.target} moved to {tip[:12]}")
        pr, head, _ = self.publish(client, merged_by=github.AT_ONCE)
        try:
            merged = client.merge(pr, head, gh.merge_method)
        except github.HeadMoved as exc:
            return Again(f"the head of pull request #{pr.number} moved ({exc.reason})")
        except github.GitHubError as exc:
            return self.left_open(client, pr, head, exc)
        # Recorded before the local target follows: after a crash in
        # between, the patch would look "already applied" locally.
        done = self.record(State.MERGED, Route.AUTO_MERGE,
                           f"{self.decision.reason}; merged through pull request #{pr.number}",
                           merged_commit=merged, pr=pr, pr_state=PRState.MERGED,
                           timings={"github": _since(started)})
        follow = self.follow_merge(merged)
        if follow:
            self.store.set_fields(self.sub.id, reason=f"{done.reason}; {follow}")
            done = self.store.get(self.sub.id)
        return done

    def publish(self, client: github.Client, *, merged_by: str) -> tuple[github.PullRequest, str, str]:
        """Push the validated commit to errauto/<id>; find or open its pull request.

        Returns the pull request, the pushed head and "opened" or "updated".
        """
        gh, sub, v = self.config.github, self.sub, self.validation
        assert gh is not None
        head = str(merge.build_commits(self.repo, pygit2.Oid(hex=v.base), v.patch.commits, v.trees,
                                       submission_id=sub.id, fallback_message=sub.title + "\n"))
        branch = github.branch_name(sub.id)
        self.store.begin_carrying_out(sub.id, "a pull request")  # Cancelled if a reject came first
        github.push_branch(self.repo, gh.remote, head, branch)
        title = github.pull_request_title(sub)
        body = github.pull_request_body(sub, v.explanation(self.decision),
                                        github.files_changed(self.repo, v.base, v.result_tree), merged_by=merged_by)
        pr, reused = github.open_pull_request(client, branch=branch, base=self.config.target, title=title, body=body)
        # Recorded at once: from here on the submission has an open pull request.
        self.store.set_fields(sub.id, pr_url=pr.url, pr_number=pr.number, pr_state=PRState.OPEN)
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
            self.alert("pr_failed", problem)
        return pr, head, "updated" if reused else "opened"

    def merged_earlier(self, client: github.Client) -> github.PullRequest | None:
        """The submission's pull request, if an attempt that was interrupted merged it."""
        if self.sub.pr_number is None or self.sub.pr_state not in _LEFT_OPEN:
            return None
        pr = client.get(self.sub.pr_number)
        return pr if pr.merged and pr.head == github.branch_name(self.sub.id) else None

    def left_open(self, client: github.Client, pr: github.PullRequest, head: str,
                  failure: github.GitHubError) -> Submission:
        """GitHub would not merge at once (required checks or reviews, a limit):
        let it merge the validated head when its requirements are met."""
        assert self.config.github is not None
        why = f"merging pull request #{pr.number} at once failed ({failure.reason})"
        try:
            client.enable_auto_merge(pr, self.config.github.merge_method, head)
            state, why = PRState.AUTO_MERGE, why + "; auto-merge enabled instead"
        except github.GitHubError as exc:
            state, why = PRState.AUTO_MERGE_FAILED, why + f", and auto-merge could not be enabled ({exc.reason})"
        self.alert("auto_merge_failed", why)
        return self.record(State.PR_OPEN, Route.PULL_REQUEST, f"{self.decision.reason}; {why}", pr=pr, pr_state=state)

    def follow_merge(self, merged: str) -> str | None:
        """Fast-forward the local target to GitHub's merge; None, or why it did not follow."""
        config, base = self.config, self.validation.base
        assert config.github is not None
        try:
            github.fetch(self.repo, config.github.remote, config.target)
        except github.GitHubError as exc:
            return f"local {config.target} did not follow: {exc.reason}"
        new = pygit2.Oid(hex=merged)
        if new not in self.repo or not self.repo.descendant_of(new, pygit2.Oid(hex=base)):
            return f"local {config.target} did not follow: the merge is not on {config.github.remote}"
        outcome = merge.fast_forward(self.repo, config, base, merged,
                                     f"errauto: fast-forward to {config.github.remote}")
        if outcome.status == merge.MergeStatus.MERGED:
            return None
        return f"local {config.target} did not follow: {outcome.reason or 'it moved'}"

    def github_failed(self, failure: github.GitHubError) -> Submission:
        """The GitHub route failed: alert, and hold it; never lost.

        With a pull request already open it stays `pr_open` (people decide
        there, and it is followed); otherwise it waits in the review queue.
        """
        self.alert("pr_failed", f"GitHub route failed: {failure.reason}")
        current = self.store.get(self.sub.id)
        if current.pr_number is not None and current.pr_state in _LEFT_OPEN:
            return self.record(State.PR_OPEN, Route.PULL_REQUEST, f"{self.decision.reason}; pull request "
                               f"#{current.pr_number} left open: {failure.reason}")
        return self.record(State.AWAITING_REVIEW, Route.REVIEW,
                           f"{self.decision.reason}; GitHub route failed, held for review: {failure.reason}")
