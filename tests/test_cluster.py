"""Several machines on one PostgreSQL state: a submission recorded on any of them is a job any
worker with a clone of its repository takes (errauto_daemon/jobs.py), merges go to the shared
remote by push, and a worker killed mid-validation or mid-merge loses nothing and doubles nothing.

Each "machine" is a state directory, a clone of one bare remote and a daemon of its own."""
from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from errauto_daemon import inbox, jobs, notify
from errauto_daemon.domain import State
from errauto_daemon.main import main
from errauto_daemon.store import Store
from tests.helpers.cluster import Machine
from tests.helpers.daemon import DaemonProcess, all_decided, drop, progress, wait_until
from tests.helpers.gitrepo import CALC, GitRepo, config_toml, git, python_project

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])  # machines share a server, never a file

FIX = {"calc.py": CALC.replace("a - b", "a + b")}


def shared_remote(tmp_path: Path, config: str) -> tuple[Path, GitRepo]:
    seed = python_project(tmp_path / "seed", config=config)
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed.path), str(remote))
    return remote, seed


def notes_patch(seed: GitRepo, i: int, *, text: str | None = None) -> bytes:
    return seed.make_patch({f"notes/n{i:03d}.txt": text if text is not None else f"note {i}\n"})


def test_a_patch_recorded_on_one_machine_is_validated_and_pushed_by_another(
        tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    remote, seed = shared_remote(tmp_path, config_toml(top='push = "origin"\n'))
    a = Machine(tmp_path, "a", remote)  # records only: no daemon runs there
    b = Machine(tmp_path, "b", remote)
    b.start(daemons)
    patch = tmp_path / "fix.patch"
    patch.write_bytes(seed.make_patch(FIX))

    sent = a.errauto("submit", str(patch), "--repo", str(a.clone), "--json")
    assert sent.returncode == 0, sent.stderr

    store = Store()
    (sub,) = wait_until(lambda: all_decided(store, 1), timeout=120, poll=0.2, what="the decision")
    assert sub.state == "merged", sub.reason
    assert sub.repo == str(a.clone) and sub.remote == str(remote.resolve())
    assert "a + b" in git(remote, "show", "main:calc.py")
    assert git(remote, "rev-parse", "main").strip() == sub.merged_commit
    assert "a + b" in (b.clone / "calc.py").read_text()  # the machine that merged followed its push
    assert "a - b" in (a.clone / "calc.py").read_text()  # the recording machine's clone was not touched
    assert f"submission {sub.id}: merged" in b.log


def test_a_worker_validates_on_the_remotes_tip_not_on_its_stale_clone(
        tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """Another machine merged since this worker's clone last looked: the worker fetches the remote
    before validating, so the patch is validated once, on what it will be merged onto."""
    remote, seed = shared_remote(tmp_path, config_toml(top='push = "origin"\n'))
    b = Machine(tmp_path, "b", remote)
    elsewhere = tmp_path / "elsewhere"
    git(tmp_path, "clone", "-q", str(remote), str(elsewhere))
    (elsewhere / "CHANGES").write_text("merged on another machine\n")
    git(elsewhere, "add", "CHANGES")
    git(elsewhere, "commit", "-q", "-m", "another machine's merge")
    git(elsewhere, "push", "-q", "origin", "main")
    moved = git(remote, "rev-parse", "main").strip()
    patch = tmp_path / "fix.patch"
    patch.write_bytes(seed.make_patch(FIX))
    assert b.errauto("submit", str(patch), "--repo", str(b.clone)).returncode == 0
    b.start(daemons)
    store = Store()
    (sub,) = wait_until(lambda: all_decided(store, 1), timeout=120, poll=0.2, what="the decision")
    assert sub.state == "merged" and sub.base_commit == moved, (sub.state, sub.reason)
    assert not any(e["kind"] == "revalidate" for e in store.events(sub.id))  # validated once
    assert git(remote, "rev-parse", "main^").strip() == moved


def test_a_push_to_the_git_servers_submit_ref_is_validated_by_a_worker(
        tmp_path: Path, daemons: list[DaemonProcess], capsys: pytest.CaptureFixture[str]) -> None:
    """Intake on the git server: its post-receive hook records the push under the URL the workers
    clone from (`remote_url`), so a worker's clone of it validates the patch and pushes the merge."""
    bare = tmp_path / "server.git"
    config = config_toml(top=f'push = "origin"\nremote_url = "{bare}"\n')
    seed = python_project(tmp_path / "seed", config=config)
    git(tmp_path, "clone", "-q", "--bare", str(seed.path), str(bare))
    assert main(["hooks", "install", "--repo", str(bare), "--server"]) == 0
    capsys.readouterr()
    worker = Machine(tmp_path, "worker", bare)
    worker.start(daemons)
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(bare), str(dev))
    (dev / "calc.py").write_text(CALC.replace("a - b", "a + b"))
    git(dev, "commit", "-qam", "Fix add()")

    pushed = subprocess.run(["git", "push", "origin", "HEAD:refs/for/main"], cwd=dev, capture_output=True, text=True)

    assert pushed.returncode == 0 and "errauto: queued 1" in pushed.stderr, pushed.stderr
    store = Store()
    (sub,) = wait_until(lambda: all_decided(store, 1), timeout=120, poll=0.2, what="the decision")
    assert (sub.source, sub.state, sub.remote) == ("post-receive", "merged", str(bare.resolve())), sub.reason
    assert sub.repo == str(bare.resolve())  # recorded on the server, validated in the worker's clone
    assert "a + b" in git(bare, "show", "main:calc.py")
    assert f"submission {sub.id}: merged" in worker.log


def test_the_same_patch_sent_to_two_machines_is_one_submission(tmp_path: Path) -> None:
    remote, seed = shared_remote(tmp_path, config_toml(top='push = "origin"\n'))
    a, b = Machine(tmp_path, "a", remote), Machine(tmp_path, "b", remote)
    patch = tmp_path / "fix.patch"
    patch.write_bytes(seed.make_patch(FIX))
    for machine in (a, b):
        sent = machine.errauto("submit", str(patch), "--repo", str(machine.clone))
        assert sent.returncode == 0, sent.stderr
    store = Store()
    (sub,) = store.submissions()
    assert [e["kind"] for e in store.events(sub.id)].count("duplicate") == 1
    jobs = store.sql("SELECT status, args ->> 'sub_id' FROM procrastinate_jobs")
    assert jobs == [("todo", str(sub.id))]  # one job waits for it, whoever sent it


def test_errauto_apply_validates_at_once_and_leaves_no_job(tmp_path: Path) -> None:
    remote, seed = shared_remote(tmp_path, config_toml(top='push = "origin"\n'))
    a = Machine(tmp_path, "a", remote)
    patch = tmp_path / "fix.patch"
    patch.write_bytes(seed.make_patch(FIX))
    done = a.errauto("apply", str(patch), "--repo", str(a.clone))
    assert done.returncode == 0, done.stderr
    store = Store()
    assert store.get(1).state == "merged"
    assert store.sql("SELECT COUNT(*) FROM procrastinate_jobs") == [(0,)]


def test_an_inbox_file_decided_elsewhere_is_filed_by_its_own_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Machine b decides a patch machine a took from its inbox: b cannot move a's file (on another
    machine it does not exist), so a's daemon files it by its fate on its next rescan."""
    remote, seed = shared_remote(tmp_path, config_toml(top='push = "origin"\n'))
    a = Machine(tmp_path, "a", remote)
    as_a = {"ERRAUTO_HOME": a.env["ERRAUTO_HOME"], "XDG_CACHE_HOME": a.env["XDG_CACHE_HOME"]}
    for key, value in as_a.items():
        monkeypatch.setenv(key, value)
    store = Store()
    inbox.ensure_inbox(str(a.clone))
    taken = inbox.take(store, str(a.clone), drop(a.inbox, "fix.patch", seed.make_patch(FIX)))
    assert taken is not None
    [waiting] = (a.inbox / "queued").iterdir()

    monkeypatch.setenv("ERRAUTO_HOME", str(tmp_path / "b" / "state"))  # machine b, which decides it
    there = Store()
    inbox.settle(there, there.transition(taken.id, State.REJECTED, reason="decided on b"))
    assert waiting.exists()  # not b's to move

    for key, value in as_a.items():
        monkeypatch.setenv(key, value)
    assert inbox.settle_waiting(store) == 1
    assert not waiting.exists() and (a.inbox / "rejected" / waiting.name).exists()
    assert "decided on b" in (a.inbox / "rejected" / (waiting.name + ".reason.txt")).read_text()
    assert inbox.settle_waiting(store) == 0
    there.close()
    store.close()


def test_an_alert_is_routed_by_this_machines_clone_of_its_repository(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any machine's sender may deliver an alert recorded on another: it reads the repository's
    `[alerts]` from its own clone of the remote, not from the recording machine's path."""
    config = config_toml(top='push = "origin"\n', extra='[alerts]\ndisabled = ["review_needed"]\n')
    remote, _ = shared_remote(tmp_path, config)
    b = Machine(tmp_path, "b", remote)
    monkeypatch.setenv("ERRAUTO_HOME", b.env["ERRAUTO_HOME"])
    store = Store()
    sub, _ = store.insert_submission(repo=str(tmp_path / "on-another-machine"), remote=str(remote.resolve()),
                                     target="main", source="inbox", source_detail="fix.patch", title="fix",
                                     author=None, note=None, patch_sha256="0" * 64, dedup_key="k",
                                     state=State.AWAITING_REVIEW, reason="held")
    [alert] = [a for a in store.alerts() if a.submission_id == sub.id]
    assert alert.kind == "review_needed"
    assert notify.Router(store, env={}).sinks(alert) == []  # b's clone disables it
    store.close()


def test_the_sweep_gives_each_queued_submission_without_a_job_one(tmp_path: Path) -> None:
    """What an intake killed between its record and its job, or a server restart, leaves."""
    store = Store()
    ids = [store.insert_submission(repo="/r", target="main", source="cli", source_detail=None, title=f"p{n}",
                                   author=None, note=None, patch_sha256=f"{n:064x}", dedup_key=f"k{n}")[0].id
           for n in range(3)]
    store.transition(ids[2], State.REJECTED, reason="no")  # decided: no job
    assert jobs.sweep(store) == 2
    assert jobs.sweep(store) == 0  # each has its waiting job
    assert sorted(store.sql("SELECT status, args ->> 'sub_id', queueing_lock FROM procrastinate_jobs")) == \
        [("todo", str(i), f"sub-{i}") for i in ids[:2]]
    assert jobs.enqueue(store, ids[0]) is False  # one waiting job per submission, whoever asks


def test_a_machine_without_a_clone_leaves_the_job_to_one_that_has_it(
        tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    remote, seed = shared_remote(tmp_path, config_toml(top='push = "origin"\n'))
    a = Machine(tmp_path, "a", remote)
    other_remote = tmp_path / "other.git"
    git(tmp_path, "clone", "-q", "--bare", str(remote), str(other_remote))
    b = Machine(tmp_path, "b", other_remote)  # a clone of another repository only
    b.start(daemons, workers=1)
    patch = tmp_path / "fix.patch"
    patch.write_bytes(seed.make_patch(FIX))
    assert a.errauto("submit", str(patch), "--repo", str(a.clone)).returncode == 0
    store = Store()
    wait_until(lambda: "left for another machine" in b.log,
               timeout=60, what="machine b to decline the job")
    assert store.submissions()[0].state == "queued"  # not failed, not claimed: waiting for a clone
    a.start(daemons, workers=1)
    (sub,) = wait_until(lambda: all_decided(store, 1), timeout=120, poll=0.2, what="the decision")
    assert sub.state == "merged", sub.reason


@pytest.mark.slow
def test_three_workers_sixty_patches_killed_workers_and_a_server_restart(
        tmp_path: Path, daemons: list[DaemonProcess], postgres: object) -> None:
    """60 patches from the inboxes and `submit` of three machines, 8 of them conflicting pairs.
    One worker is SIGKILLed mid-validation, another mid-merge (its push held by the remote's
    hook), and the server restarts once. Afterwards every submission is decided exactly once,
    the remote holds each merged patch exactly once, and each decision's alert was recorded once."""
    # One check of a second (so a worker can be killed mid-validation) that every patch passes.
    config = ('target = "main"\npush = "origin"\nmax_revalidations = 20\n'
              '[checks.tests]\ncommand = ["sh", "-c", "sleep 1; test -d notes"]\n')
    remote, seed = shared_remote(tmp_path, config)
    hold = tmp_path / "hold-next-push"
    pushing = tmp_path / "pushing"
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\nif [ -e {hold} ]; then rm -f {hold}; echo $$ > {pushing}; sleep 30; fi\nexit 0\n")
    hook.chmod(0o755)
    machines = [Machine(tmp_path, name, remote) for name in ("m1", "m2", "m3")]
    for m in machines:
        m.start(daemons, workers=2)
    store = Store()

    patches: list[tuple[str, bytes]] = []
    for i in range(44):
        patches.append((f"n{i:03d}.patch", notes_patch(seed, i)))
    for pair in range(8):  # the same new file with two different texts: only one of each pair can merge
        for side in "ab":
            patches.append((f"c{pair}{side}.patch", notes_patch(seed, 900 + pair, text=f"pair {pair} {side}\n")))
    assert len(patches) == 60
    sent: dict[str, list[str]] = {m.name: [] for m in machines}
    for n, (name, data) in enumerate(patches):
        m = machines[n % 3]
        if n % 2:
            drop(m.inbox, name, data)
        else:
            (m.root / name).write_bytes(data)
            sent[m.name].append(str(m.root / name))
    for m in machines:  # one `errauto submit` a machine: the work outlasts intake even on a loaded machine
        done = m.errauto("submit", *sent[m.name], "--repo", str(m.clone))
        assert done.returncode == 0, done.stderr

    # One worker killed mid-validation: the first machine seen validating.
    def validating_machine() -> Machine | None:
        busy = {w.home: w.busy for w in store.workers()}
        return next((m for m in machines if busy.get(str(m.root / "state"), 0) > 0
                     and any(s.state == "validating" for s in store.submissions(limit=1000))), None)
    killed_validating = wait_until(validating_machine, timeout=120, poll=0.1, what="a busy worker")
    assert killed_validating.daemon is not None
    killed_validating.daemon.kill()

    # Another killed mid-merge: its push waits in the remote's hook.
    hold.touch()
    pid = int(wait_until(lambda: pushing.read_text().strip() if pushing.exists() else None, timeout=120,
                         poll=0.1, what="a push held by the hook"))
    pusher = next(m for m in machines if m is not killed_validating and m.daemon is not None
                  and _descends_from(pid, m.daemon.pid))
    assert pusher.daemon is not None
    pusher.daemon.kill()

    postgres.restart()  # type: ignore[attr-defined]
    for m in (killed_validating, pusher):  # the machines come back
        m.start(daemons, workers=2)

    subs = wait_until(lambda: all_decided(store, 60), timeout=600, poll=0.5,
                      what=f"60 decisions ({progress(store)})")
    assert len(subs) == 60
    merged = [s for s in subs if s.state == "merged"]
    # Each decided once: one decision event per submission's final state.
    for s in subs:
        decisions = [e for e in store.events(s.id) if e["kind"] == "state" and e["to_state"] == s.state]
        assert len(decisions) == 1, (s.id, s.state, store.events(s.id))
    # The remote holds each merged patch once; of each conflicting pair at most one merged.
    files = git(remote, "ls-tree", "--name-only", "main", "notes/").split()
    assert len(files) == len(set(files)) == len(merged)
    log = git(remote, "log", "--format=%s", "main")
    for s in merged:
        assert log.count(s.title) == 1, s.title
    for pair in range(8):
        assert sum(1 for s in merged if s.source_detail and s.source_detail.startswith(f"c{pair}")) <= 1
    assert len(merged) >= 44  # every independent patch merged
    # Alerts: each decision's recorded once, and delivered once, by one machine, to its alerts.jsonl.
    kinds = {"merged": "auto_merged", "rejected": "rejected"}
    alerts = [a for a in store.alerts(limit=10_000) if a.submission_id is not None]
    assert Counter((a.submission_id, a.kind) for a in alerts) == Counter((s.id, kinds[s.state]) for s in subs)

    def delivered() -> Counter[int] | None:
        ids: Counter[int] = Counter()
        for m in machines:
            path = m.root / "state" / "alerts.jsonl"
            if path.exists():
                ids.update(json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip())
        return ids if set(ids) >= {a.id for a in alerts} else None
    delivered_ids = wait_until(delivered, timeout=120, poll=0.5, what="every alert delivered")
    assert [a.id for a in alerts if delivered_ids[a.id] != 1] == []


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return False
        pid = int(fields[1])
    return False



@pytest.mark.slow
def test_merges_into_one_target_are_serialised_across_machines(
        tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """Two machines, two workers each, every patch mergeable. A patch whose push found the remote
    moved validates again holding the target's lock on every machine (not only its own), so one
    revalidation is always enough: none is held for a target that kept moving."""
    config = ('target = "main"\npush = "origin"\nmax_revalidations = 1\n'
              '[checks.tests]\ncommand = ["sh", "-c", "sleep 0.2; test -d notes"]\n')
    remote, seed = shared_remote(tmp_path, config)
    machines = [Machine(tmp_path, name, remote) for name in ("m1", "m2")]
    for n in range(24):
        m = machines[n % 2]
        path = m.root / f"n{n}.patch"
        path.write_bytes(notes_patch(seed, n))
        assert m.errauto("submit", str(path), "--repo", str(m.clone)).returncode == 0
    for m in machines:
        m.start(daemons, workers=2)
    store = Store()
    subs = wait_until(lambda: all_decided(store, 24), timeout=300, poll=0.3, what=f"24 decisions ({progress(store)})")
    assert {s.state for s in subs} == {"merged"}, [(s.id, s.state, s.reason) for s in subs if s.state != "merged"]
    assert any(e["kind"] == "revalidate" for s in subs for e in store.events(s.id))  # the race did happen
    assert len(git(remote, "ls-tree", "--name-only", "main", "notes/").split()) == 24
