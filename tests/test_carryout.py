"""Carrying out a route, directly: a real repository, a real store, a
validation built by hand; and route.decide's table."""
from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import pygit2
import pytest

from errauto_daemon import carryout, intake, route, score, validation
from errauto_daemon import config as config_mod
from errauto_daemon.carryout import Again, Outcome, carry_out, merge_approved, record
from errauto_daemon.config import Config
from errauto_daemon.domain import Route, State
from errauto_daemon.patchapply import apply_patch
from errauto_daemon.patchfile import parse
from errauto_daemon.progress import SILENT
from errauto_daemon.score import Confidence
from errauto_daemon.store import Store, Submission
from errauto_daemon.validation import Validation
from tests.helpers.gitrepo import CALC, GitRepo, config_toml, python_project

FIX: dict[str, str | bytes | None] = {"calc.py": CALC.replace("a - b", "a + b")}


class Claimed:
    """A submission of FIX, claimed, and its validation on the target's tip."""

    def __init__(self, project: GitRepo, store: Store, *, top: str = "") -> None:
        if top:
            project.commit("configure", {".errauto.toml": config_toml(top=top)})
        self.project, self.store = project, store
        data = project.make_patch(FIX)
        submitted = intake.submit(store, project.path, data, source="cli", name="fix").submission
        claimed = store.claim(submitted.id)
        assert claimed is not None
        self.sub: Submission = claimed
        self.repo = pygit2.Repository(str(project.path))
        self.config: Config = config_mod.load(self.repo, self.sub.target)
        tip = self.repo.references[self.config.target_ref].peel(pygit2.Commit)
        patch = parse(data, "fix")
        overlays, notes = apply_patch(self.repo, tip.tree, patch, target=self.config.target)
        conf = score.compute(self.config, (), notes=notes)
        self.validation = Validation(str(tip.id), patch, tuple(o.write_tree() for o in overlays), (),
                                     conf, 1, {"apply": 0.5})

    def carry_out(self, decision: route.Decision, revalidations: int = 0) -> Submission | Again:
        return carry_out(self.store, SILENT, self.repo, self.config, self.sub, self.validation, decision,
                         revalidations=revalidations)

    def tree_of(self, commit: str) -> str:
        return self.project.git("rev-parse", f"{commit}^{{tree}}").strip()


@pytest.fixture
def claimed(project: GitRepo) -> Claimed:
    return Claimed(project, Store())


def test_review_is_recorded_awaiting_review_with_the_explanation(claimed: Claimed) -> None:
    base = claimed.project.head("main")
    decision = route.Decision(Route.REVIEW, "confidence 0.40 is below the pull-request threshold 0.70")

    done = claimed.carry_out(decision)

    assert isinstance(done, Submission)
    assert (done.state, done.route, done.reason) == ("awaiting_review", "review", decision.reason)
    assert done.base_commit == base and done.result_tree == claimed.validation.result_tree
    assert done.confidence == claimed.validation.confidence.value
    assert done.explanation is not None
    assert done.explanation["route"] == "review" and done.explanation["reason"] == decision.reason
    assert done.explanation["base"] == base and done.explanation["timings"] == {"apply": 0.5}
    assert claimed.project.head("main") == base  # nothing merged


def test_auto_merge_on_an_unmoved_target_is_recorded_merged(claimed: Claimed) -> None:
    base = claimed.project.head("main")

    done = claimed.carry_out(route.Decision(Route.AUTO_MERGE, "confidence 1.00 >= auto-merge threshold 0.90"))

    assert isinstance(done, Submission)
    merged = claimed.project.head("main")
    assert (done.state, done.route, done.merged_commit) == ("merged", "auto_merge", merged)
    assert claimed.project.head("main^") == base
    assert claimed.tree_of(merged) == claimed.validation.result_tree
    assert done.explanation is not None and set(done.explanation["timings"]) == {"apply", "merge"}
    assert "a + b" in claimed.project.read("calc.py")


def test_auto_merge_on_a_moved_target_asks_to_validate_again_and_records_nothing(claimed: Claimed) -> None:
    moved = claimed.project.commit("meanwhile", {"NOTES": "moved\n"})

    done = claimed.carry_out(route.Decision(Route.AUTO_MERGE, "confident"))

    assert done == Again(f"main moved to {moved[:12]}")
    assert claimed.project.head("main") == moved
    assert claimed.store.get(claimed.sub.id).state == "validating"


def test_a_target_that_kept_moving_past_the_bound_is_held_for_review(project: GitRepo) -> None:
    claimed = Claimed(project, Store(), top="max_revalidations = 1")
    claimed.project.commit("meanwhile", {"NOTES": "moved\n"})

    done = claimed.carry_out(route.Decision(Route.AUTO_MERGE, "confident"), revalidations=1)

    assert isinstance(done, Submission)
    assert (done.state, done.route) == ("awaiting_review", "review")
    assert done.reason == "main kept moving: validated 2 times without a chance to merge"


def test_pull_request_without_github_is_held_for_review_saying_so(claimed: Claimed) -> None:
    base = claimed.project.head("main")
    # What score gives a patch above the pull-request threshold only.
    conf = Confidence(0.8, (), (), (), auto_merge_threshold=0.9, pr_threshold=0.7)
    decision = route.decide(conf, github=claimed.config.github is not None)

    done = claimed.carry_out(decision)

    assert isinstance(done, Submission)
    assert (done.state, done.route) == ("awaiting_review", "review")
    assert done.reason is not None and "GitHub not configured" in done.reason
    assert done.pr_number is None and claimed.project.head("main") == base


def test_an_approved_merge_keeps_the_route_and_says_who(claimed: Claimed) -> None:
    done = merge_approved(claimed.store, SILENT, claimed.repo, claimed.config, claimed.sub,
                          claimed.validation, who="ana", approval="approved by ana", may_again=False)

    assert isinstance(done, Submission)
    assert (done.state, done.reason, done.merged_commit) == ("merged", "approved by ana",
                                                             claimed.project.head("main"))
    assert done.route is None  # claimed straight from the queue: no route was recorded
    assert claimed.store.events(done.id)[-1]["detail"] == "approved by ana"


def test_an_approved_merge_on_a_moved_target_is_held_when_it_may_not_go_again(claimed: Claimed) -> None:
    claimed.project.commit("meanwhile", {"NOTES": "moved\n"})

    done = merge_approved(claimed.store, SILENT, claimed.repo, claimed.config, claimed.sub,
                          claimed.validation, who="ana", approval="approved by ana", may_again=False)

    assert isinstance(done, Submission)
    assert (done.state, done.reason) == ("awaiting_review", "approved by ana, but the merge was held: "
                                                            "main kept moving")


def test_an_outcome_writes_only_the_columns_it_names(tmp_path: Path) -> None:
    store = Store()
    project = python_project(tmp_path / "other")
    sub = intake.submit(store, project.path, project.make_patch(FIX), source="cli", name="p").submission
    store.claim(sub.id)
    store.set_fields(sub.id, pr_url="https://example.invalid/pr/1", pr_number=1, pr_state="open")

    done = record(store, sub.id, Outcome(State.FAILED, "broken", detail="why it broke"))

    assert (done.state, done.reason, done.route) == ("failed", "broken", None)
    assert (done.pr_url, done.pr_number, done.pr_state) == ("https://example.invalid/pr/1", 1, "open")
    assert store.events(sub.id)[-1]["detail"] == "why it broke"
    assert Outcome(State.FAILED, "broken").columns() == {"reason": "broken"}


@pytest.mark.parametrize("module", [carryout, validation])
def test_carrying_out_does_not_import_validation_back(module: ModuleType) -> None:
    assert module.__file__ is not None
    source = Path(module.__file__).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            imported |= {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    assert "errauto_daemon.validate" not in imported


def _confidence(value: float, *, gates: tuple[str, ...] = (), review_only: tuple[str, ...] = ()) -> Confidence:
    return Confidence(value, (), gates, review_only, auto_merge_threshold=0.9, pr_threshold=0.7)


@pytest.mark.parametrize(("value", "gates", "review_only", "github", "expected"), [
    (0.95, (), (), True, route.Decision(Route.AUTO_MERGE, "confidence 0.95 >= auto-merge threshold 0.90")),
    (0.95, (), (), False, route.Decision(Route.AUTO_MERGE, "confidence 0.95 >= auto-merge threshold 0.90")),
    (0.90, (), (), True, route.Decision(Route.AUTO_MERGE, "confidence 0.90 >= auto-merge threshold 0.90")),
    (0.80, (), (), True, route.Decision(Route.PULL_REQUEST, "confidence 0.80 >= pull-request threshold 0.70",
                                        pr_auto_merge=True)),
    (0.80, (), (), False, route.Decision(Route.REVIEW, "confidence 0.80 >= pull-request threshold 0.70; "
                                                       "GitHub not configured, so held for review")),
    (0.95, ("protected paths: x",), (), True,
     route.Decision(Route.PULL_REQUEST, "confidence 0.95 clears auto-merge, but protected paths: x")),
    (0.80, ("no tests check",), (), True,
     route.Decision(Route.PULL_REQUEST, "confidence 0.80 >= pull-request threshold 0.70")),
    (0.95, ("no tests check",), (), False,
     route.Decision(Route.REVIEW, "confidence 0.95 clears auto-merge, but no tests check; "
                                  "GitHub not configured, so held for review")),
    (1.00, (), ("submodule change",), True, route.Decision(Route.REVIEW, "submodule change: a person must review")),
    (0.50, (), (), True, route.Decision(Route.REVIEW, "confidence 0.50 is below the pull-request threshold 0.70")),
])
def test_decide(value: float, gates: tuple[str, ...], review_only: tuple[str, ...], github: bool,
                expected: route.Decision) -> None:
    assert route.decide(_confidence(value, gates=gates, review_only=review_only), github=github) == expected
