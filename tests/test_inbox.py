"""The inbox folder, taken in process: entries that cannot be taken, names that are not text."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from errauto_daemon import inbox, intake
from errauto_daemon.domain import State
from errauto_daemon.store import Store
from tests.helpers.gitrepo import CALC, GitRepo, python_project

FIXED = CALC.replace("a - b", "a + b")
NEG = CALC.replace("return -a", "return 0 - a")


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    repo = python_project(tmp_path / "project")
    assert inbox.ensure_inbox(str(repo.path)) is not None
    return repo


def alerts_of(store: Store, kind: str) -> list[dict[str, object]]:
    return [a.data for a in store.alerts() if a.kind == kind]


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_directory(path: Path) -> None:
    path.mkdir()
    (path / "inside.patch").write_bytes(b"not taken from a folder\n")


def make_dangling_link(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere.patch")


# Entries no process can read as a patch, root included (the suite may run as
# root, who reads a `chmod 000` file): each must be set aside, the rest taken.
@pytest.mark.parametrize("make", [make_fifo, make_directory, make_dangling_link],
                         ids=["fifo", "directory", "dangling-symlink"])
def test_an_entry_that_cannot_be_read_is_set_aside_with_a_reason_and_an_alert(
        project: GitRepo, make: object) -> None:
    folder = project.path / "patches"
    make(folder / "u.patch")  # type: ignore[operator]
    (folder / "v.patch").write_bytes(project.make_patch({"calc.py": FIXED}))
    store = Store()

    taken = inbox.scan(store, str(project.path), quiet=0)

    assert [s.source_detail for s in taken] == ["v.patch"]
    assert not os.path.lexists(folder / "u.patch")
    assert os.path.lexists(folder / "rejected" / "u.patch")
    assert "not a regular file" in (folder / "rejected" / "u.patch.reason.txt").read_text()
    [alert] = alerts_of(store, "inbox_skipped")
    assert alert["file"] == "u.patch" and alert["repo"] == str(project.path)
    assert "not a regular file" in str(alert["detail"])
    assert [s.source_detail for s in store.submissions()] == ["v.patch"]  # nothing recorded for u.patch


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_a_file_without_read_permission_is_set_aside(project: GitRepo) -> None:
    folder = project.path / "patches"
    (folder / "u.patch").write_bytes(project.make_patch({"calc.py": FIXED}))
    (folder / "u.patch").chmod(0)
    (folder / "v.patch").write_bytes(project.make_patch({"calc.py": NEG}))
    store = Store()

    taken = inbox.scan(store, str(project.path), quiet=0)

    assert [s.source_detail for s in taken] == ["v.patch"]
    assert "Permission denied" in (folder / "rejected" / "u.patch.reason.txt").read_text()
    assert len(alerts_of(store, "inbox_skipped")) == 1


def test_a_name_that_is_not_utf8_is_taken_and_recorded_printable_and_reversible(project: GitRepo) -> None:
    folder = project.path / "patches"
    raw_name = b"a-\xff.patch"
    with open(os.path.join(os.fsencode(folder), raw_name), "wb") as fh:
        fh.write(project.make_patch({"calc.py": FIXED}))
    (folder / "v.patch").write_bytes(project.make_patch({"calc.py": NEG}))
    store = Store()

    taken = inbox.scan(store, str(project.path), quiet=0)

    by_name = {s.source_detail: s for s in taken}
    assert set(by_name) == {"a-\\xff.patch", "v.patch"}
    sub = by_name["a-\\xff.patch"]
    [taken_file] = store.inbox_files(sub.id)
    assert taken_file.path.isprintable() and "\\xff" in taken_file.path
    on_disk = os.fsencode(intake.original_name(taken_file.path))
    assert on_disk == os.fsencode(folder / "queued") + b"/" + str(sub.id).encode() + b"-" + raw_name
    assert os.path.exists(on_disk)
    # What the store keeps is valid UTF-8 JSON all the way (alerts, the queue's output).
    json.dumps(store.get(sub.id).source_detail).encode("utf-8")
    # Deciding it moves the very file.
    store.transition(sub.id, State.REJECTED, reason="no")
    inbox.settle(store, store.get(sub.id))
    assert os.path.exists(os.fsencode(folder / "rejected") + b"/" + str(sub.id).encode() + b"-" + raw_name)
    assert not os.path.exists(on_disk)


@pytest.mark.parametrize("name", ["a-\\xff.patch", "back\\slash.patch", "plain.patch", "été.patch"])
def test_recorded_names_give_the_original_back(name: str) -> None:
    for original in (name, os.fsdecode(b"x-\xff\xfe-" + name.encode())):
        recorded = intake.recorded_name(original)
        assert recorded.isprintable()
        assert intake.original_name(recorded) == original


def test_a_name_too_long_for_its_fate_folder_is_taken_and_does_not_stop_the_scan(project: GitRepo) -> None:
    folder = project.path / "patches"
    long_name = "a" * 245 + ".patch"  # 251 bytes: fits the inbox, not with "<id>-" in front
    (folder / long_name).write_bytes(project.make_patch({"calc.py": FIXED}))
    (folder / "v.patch").write_bytes(project.make_patch({"calc.py": NEG}))
    store = Store()

    taken = inbox.scan(store, str(project.path), quiet=0)

    assert sorted(s.source_detail or "" for s in taken) == sorted([long_name, "v.patch"])
    assert not (folder / long_name).exists() and not (folder / "v.patch").exists()
    queued = sorted(p.name for p in (folder / "queued").iterdir())
    assert len(queued) == 2 and all(len(os.fsencode(n)) <= 255 and n.endswith(".patch") for n in queued)


# -- a patch that writes into the inbox folder ------------------------------------------


@pytest.mark.parametrize(("config_top", "path"), [
    ("", "patches/x.patch"),
    ("", "patches/merged/1-x.patch"),
    ('inbox = "./ci/incoming/"', "ci/incoming/notes.txt"),
])
def test_a_patch_touching_the_inbox_folder_is_rejected_with_its_reason(
        tmp_path: Path, config_top: str, path: str) -> None:
    from errauto_daemon.validate import Validator
    from tests.helpers.gitrepo import config_toml

    project = python_project(tmp_path / "project", config=config_toml(top=config_top))
    tip = project.head("main")
    data = project.make_patch({path: "diff --git a/calc.py b/calc.py\n", "calc.py": FIXED})
    store = Store()
    sub = intake.submit(store, project.path, data, source="cli", name="adds-inbox-file.patch").submission

    decided = Validator(store).process(sub.id)

    assert decided.state == "rejected"
    assert "touches the inbox folder" in (decided.reason or "") and path in (decided.reason or "")
    assert project.head("main") == tip
    assert not (project.path / path).exists()


def test_a_patch_beside_the_inbox_folder_is_not_refused(tmp_path: Path) -> None:
    from errauto_daemon import guard, patchfile

    project = python_project(tmp_path / "project")
    data = project.make_patch({"patches.txt": "a file, not the folder\n", "docs/patches/a.patch": "x\n"})
    guard.check_inbox(patchfile.parse(data, "beside.patch"), "patches")  # no PatchRejected
