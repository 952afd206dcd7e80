"""A watched repository whose configuration cannot be used: alerted once per
configuration, shown by `queue show` and `monitor`, cleared when fixed."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from errauto_daemon import intake
from errauto_daemon.daemon.watch import Watch
from errauto_daemon.main import main
from errauto_daemon.store import Store
from tests.helpers.gitrepo import CALC, config_toml, python_project


def test_a_bad_configuration_is_alerted_once_per_configuration_and_shown_until_fixed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = python_project(tmp_path / "project")
    root = str(project.path)
    assert main(["watch", "add", root]) == 0
    store = Store()
    sub = intake.submit(store, root, project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}),
                        source="cli", name="fix.patch").submission
    good = config_toml()
    project.commit("break the config", {".errauto.toml": good + "workers = 'two'\n"})
    watch = Watch(wakeup=threading.Event(), stopping=threading.Event())

    for _ in range(3):  # the daemon's periodic rescans
        assert watch._intake(store, "scan", root) is False

    [alert] = [a for a in store.alerts() if a.kind == "config_invalid"]
    assert alert.level == "warning" and alert.data["repo"] == root
    assert "workers" in str(alert.data["detail"])
    capsys.readouterr()
    assert main(["queue", "show", str(sub.id)]) == 0
    shown = capsys.readouterr().out
    assert "configuration: cannot be used since" in shown and "workers" in shown
    assert main(["queue", "show", str(sub.id), "--json"]) == 0
    assert "workers" in json.loads(capsys.readouterr().out)["config_problem"]["error"]
    main(["monitor", "--json", "--deliver", "0"])
    [config] = [c for c in json.loads(capsys.readouterr().out)["criteria"] if c["name"] == "config"]
    assert config["level"] == "warning" and root in config["text"]

    project.commit("break it another way", {".errauto.toml": good + "workers = 0\n"})
    watch._intake(store, "scan", root)
    watch._intake(store, "scan", root)
    assert len([a for a in store.alerts() if a.kind == "config_invalid"]) == 2

    project.commit("fix the config", {".errauto.toml": good})
    watch._intake(store, "scan", root)
    assert store.config_problems() == []
    main(["monitor", "--json", "--deliver", "0"])
    [config] = [c for c in json.loads(capsys.readouterr().out)["criteria"] if c["name"] == "config"]
    assert config["level"] == "ok"
    assert main(["queue", "show", str(sub.id)]) == 0
    assert "configuration:" not in capsys.readouterr().out


def test_unregistering_a_repository_forgets_its_configuration_problem(tmp_path: Path) -> None:
    store = Store()
    store.add_repo("/r")
    assert store.config_invalid("/r", "d1", "config error") is not None
    assert store.config_invalid("/r", "d1", "config error") is None
    assert [p.repo for p in store.config_problems("/r")] == ["/r"]
    store.remove_repo("/r")
    assert store.config_problems() == []
