"""What a pull request says (errauto_daemon/github/body.py), read as a person on GitHub would."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pygit2
import pytest

from errauto_daemon.domain import State
from errauto_daemon.github import body
from errauto_daemon.github.body import FileChange
from errauto_daemon.store import Submission
from tests.helpers.gitrepo import GitRepo

SUB = Submission(
    id=12, repo="/r", target="main", source="inbox", source_detail="fix.patch", title="Fix the parser",
    author="Ada <ada@example.com>", note=None, patch_sha256="0" * 64, dedup_key="k", state=State.VALIDATING,
    route=None, confidence=None, explanation=None, reason=None, base_commit=None, result_tree=None,
    merged_commit=None, merge_intent=None, pr_url=None, pr_number=None, pr_state=None, attempts=1,
    created_at=0.0, updated_at=0.0, decided_at=None)

EXPLANATION: dict[str, Any] = {
    "confidence": 0.91, "thresholds": {"auto_merge": 0.95, "pull_request": 0.8},
    "summary": "0.91: tests pass", "base": "ab" * 20, "gates": [], "notes": [],
    "parts": [
        {"check": "tests", "status": "pass", "duration": 1.5, "contribution": 0.6, "weight": 0.6},
        {"check": "lint", "status": "fail", "detail": "3 errors", "duration": 0.25, "contribution": 0.0,
         "weight": 0.2},
    ],
}


def text(sub: Submission = SUB, explanation: dict[str, Any] = EXPLANATION,
         files: list[FileChange] | None = None, merged_by: str = body.BY_AUTO_MERGE, **kw: Any) -> str:
    return body.pull_request_body(sub, explanation, files or [FileChange("a.py", 3, 1, False)],
                                  merged_by=merged_by, **kw)


def test_title_is_the_patch_title_on_one_line() -> None:
    assert body.pull_request_title(dataclasses.replace(SUB, title="  Fix   the parser ")) == "Fix the parser"
    assert body.pull_request_title(dataclasses.replace(SUB, title="Fix\nit")) == "Fix\\nit"  # shown, not obeyed
    assert len(body.pull_request_title(dataclasses.replace(SUB, title="x" * 500))) == 200


def test_title_without_text_names_the_submission() -> None:
    assert body.pull_request_title(dataclasses.replace(SUB, title="   ")) == "errauto: submission 12"


def test_body_opens_with_where_it_was_validated_and_the_confidence() -> None:
    first, blank, verdict = text().splitlines()[:3]
    assert first == "errauto validated submission #12 on `main` at `abababababab` and opened this pull request."
    assert blank == ""
    assert verdict == "**Confidence 0.91** (a pull request needs 0.80, auto-merge 0.95): 0.91: tests pass"


@pytest.mark.parametrize("merged_by, says, approve", [
    (body.BY_AUTO_MERGE, "**Auto-merge: on.**", "merge this pull request (or let auto-merge do it)."),
    (body.BY_PERSON, "**Auto-merge: off.** A person must merge it", "merge this pull request. "),
    (body.AT_ONCE, "**Merged by errauto at once** (`merge_via_pr`)", "merge this pull request. "),
])
def test_body_says_how_it_gets_merged(merged_by: str, says: str, approve: str) -> None:
    out = text(merged_by=merged_by)
    assert says in out and approve in out
    assert out.endswith("`errauto queue show 12` shows the details and check logs.\n")


def test_checks_are_a_table_with_their_contribution() -> None:
    lines = text().splitlines()
    assert "| `tests` | pass | 1.50 s | 0.60 of 0.60 |" in lines
    assert "| `lint` | fail (3 errors) | 0.25 s | 0.00 of 0.20 |" in lines


def test_no_checks_says_so_and_gates_and_notes_follow_the_table() -> None:
    explanation = {**EXPLANATION, "parts": [], "gates": ["protected path: setup.py"], "notes": ["slow"]}
    out = text(explanation=explanation)
    assert "| (no checks configured) | | | |\n\nGate: protected path: setup.py\n\nNote: slow\n" in out


def test_files_are_counted_and_listed_up_to_the_limit() -> None:
    files = [FileChange(f"f{i}.py", i, 1, False) for i in range(5)] + [FileChange("logo.png", 0, 0, True)]
    lines = text(files=files, max_files=4).splitlines()
    assert "**Files changed:** 6 (+10 −5)" in lines
    assert "| `f3.py` | 3 | 1 |" in lines and "| `f4.py` | 4 | 1 |" not in lines
    assert "| … and 2 more | | |" in lines
    assert "| `logo.png` | binary |  |" in text(files=files).splitlines()


def test_source_author_and_note() -> None:
    out = text(sub=dataclasses.replace(SUB, note="please look"))
    assert "**Source:** `inbox` (`fix.patch`), author `Ada <ada@example.com>`, errauto submission #12." in out
    assert "**Note from the submitter:** `please look`" in out
    bare = text(sub=dataclasses.replace(SUB, source="cli", source_detail=None, author=None))
    assert "**Source:** `cli`, errauto submission #12." in bare and "Note from the submitter" not in bare


def test_patch_text_cannot_mention_people_inject_markup_or_break_a_table() -> None:
    explanation = {**EXPLANATION, "summary": "cc @team <script>", "gates": ["@owner said so"],
                   "parts": [{"check": "t|`x`", "status": "fail", "detail": "@here | <b>", "duration": 0,
                              "contribution": 0, "weight": 1}]}
    sub = dataclasses.replace(SUB, author="@admins", note="`@all`|", source_detail="a|b")
    out = text(sub=sub, explanation=explanation, files=[FileChange("p|q`.py", 1, 0, False)])
    assert "@team" not in out and "@\u200bteam" in out and "&lt;script&gt;" in out
    assert "Gate: @\u200bowner said so" in out
    assert "| `t\\|'x'` | fail (@\u200bhere \\| &lt;b&gt;) |" in out
    assert "`p\\|q'.py`" in out and "`'@all'\\|`" in out and "(`a\\|b`)" in out


def test_files_changed_between_two_trees(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "r")
    base = repo.commit("base", {"keep.txt": "a\n", "edit.txt": "1\n2\n3\n", "gone.txt": "x\ny\n"})
    (repo.path / "gone.txt").unlink()
    new = repo.commit("new", {"edit.txt": "1\ntwo\n3\n4\n", "logo.bin": b"\x00\x01\x02"})
    tree = str(repo.pygit2()[new].peel(pygit2.Tree).id)
    changes = {c.path: c for c in body.files_changed(repo.pygit2(), base, tree)}
    assert changes == {
        "edit.txt": FileChange("edit.txt", 2, 1, False),
        "gone.txt": FileChange("gone.txt", 0, 2, False),
        "logo.bin": FileChange("logo.bin", 0, 0, True),
    }
