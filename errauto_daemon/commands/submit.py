"""`errauto submit PATCH...`: record now, let the daemon decide."""
from __future__ import annotations

import sys
import time
from argparse import Namespace
from collections.abc import Collection, Sequence

from errauto_daemon import intake, output, progress
from errauto_daemon.commands.apply import read_patch_arg
from errauto_daemon.domain import State
from errauto_daemon.errors import (
    EXIT_INTERNAL,
    EXIT_NO_DAEMON,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_REVIEW,
    EXIT_UNDECIDED,
)
from errauto_daemon.presence import running_pid, wake
from errauto_daemon.store import DECIDED, Store, Submission

# When several patches were submitted, the exit code is the most severe.
_SEVERITY = [EXIT_OK, EXIT_REVIEW, EXIT_REJECTED, EXIT_INTERNAL]
POLL = 0.1  # seconds between looks at the submissions while waiting
PRESENCE_EVERY = 1.0  # seconds between looks at whether the daemon still runs

HOW_TO_DECIDE = ("start one (errauto daemon start), or decide them in this process "
                 "(errauto queue process, or errauto apply PATCH)")


def worst(codes: Sequence[int]) -> int:
    return max(codes, key=_SEVERITY.index, default=EXIT_OK)


def submit(patches: Sequence[str], *, repo: str, target: str | None, note: str | None, wait: bool,
           timeout: float | None, as_json: bool, quiet: bool = False) -> int:
    store = Store()
    subs: list[tuple[Submission, bool]] = []
    for patch in patches:
        data, name = read_patch_arg(patch)
        result = intake.submit(store, repo, data, source="cli", name=name, target=target, note=note)
        subs.append((result.submission, result.created))
    daemon = wake() or running_pid() is not None
    pending = {s.id for s, _ in subs if s.state not in DECIDED}
    problem: tuple[int, str] | None = None
    if pending and not daemon:
        if wait:
            problem = (EXIT_NO_DAEMON, f"no daemon is running, so nothing decides {_ids(pending)}; "
                                       + HOW_TO_DECIDE)
        else:
            print("errauto: no daemon is running; the submissions wait in the queue until one starts "
                  "(errauto daemon start)", file=sys.stderr)
    elif wait:
        problem = _wait(store, [s for s, _ in subs], timeout, progress.for_terminal(quiet))
    if wait:
        subs = [(store.get(s.id), created) for s, created in subs]
    _show(store, subs, wait=wait, as_json=as_json)
    if problem is not None:
        print(f"errauto: {problem[1]}", file=sys.stderr)
        return problem[0]
    if not wait:
        # Recorded is success; a patch turned down at once (malformed) is not.
        return worst([EXIT_REJECTED if s.state == State.REJECTED else EXIT_OK for s, _ in subs])
    return worst([output.exit_code(s) for s, _ in subs])


def _wait(store: Store, subs: Sequence[Submission], timeout: float | None,
          shown: progress.Progress) -> tuple[int, str] | None:
    """Until the daemon decided every submission, or why not (with its exit code).

    `shown` is told each state as it changes, starting with the state each
    was recorded in. A daemon that stops meanwhile ends the wait.
    """
    started = looked = time.monotonic()
    deadline = None if timeout is None else started + timeout
    seen: dict[int, str] = {}
    for sub in subs:
        if sub.id not in seen:
            seen[sub.id] = sub.state
            shown.state_changed(sub.id, sub.state, 0.0)
    pending = {i for i, state in seen.items() if state not in DECIDED}
    try:
        while True:
            for sub_id in sorted(pending):
                state = store.get(sub_id).state
                if seen.get(sub_id) != state:
                    seen[sub_id] = state
                    shown.state_changed(sub_id, state, time.monotonic() - started)
                if state in DECIDED:
                    pending.discard(sub_id)
            if not pending:
                return None
            now = time.monotonic()
            if deadline is not None and now > deadline:
                return (EXIT_UNDECIDED, f"not decided within {timeout:g}s: {_ids(pending)} "
                                        "(the daemon decides them later; see errauto queue list)")
            if now - looked >= PRESENCE_EVERY:
                looked = now
                if running_pid() is None:
                    pending = {i for i in pending if store.get(i).state not in DECIDED}
                    if not pending:
                        return None  # decided just before it stopped
                    return (EXIT_NO_DAEMON, f"the daemon stopped before deciding {_ids(pending)}; "
                                            + HOW_TO_DECIDE)
            time.sleep(POLL)
    finally:
        shown.finished()


def _show(store: Store, subs: Sequence[tuple[Submission, bool]], *, wait: bool, as_json: bool) -> None:
    if as_json:
        values = []
        for sub, created in subs:
            value = output.submission_json(sub, store.checks(sub.id) if wait else (), full=wait)
            value["duplicate"] = not created
            values.append(value)
        print(output.dumps(values if len(values) != 1 else values[0]))
        return
    for sub, created in subs:
        lines = output.decision_lines(sub) if wait else [output.headline(sub)]
        if not wait and sub.state == State.REJECTED and sub.reason:
            lines.append(output.printable(f"  reason: {sub.reason}"))
        if not created:
            lines[0] += f"  (the same patch as submission {sub.id})"
        print("\n".join(lines))


def _ids(ids: Collection[int]) -> str:
    return ", ".join(f"#{i}" for i in sorted(ids))


# -- the command line (main.py dispatches each parsed command here) --------------

def cli(args: Namespace) -> int:
    """`errauto submit`."""
    return submit(args.patches, repo=args.repo, target=args.target, note=args.note, wait=args.wait,
                  timeout=args.timeout, as_json=args.json, quiet=args.no_progress)
