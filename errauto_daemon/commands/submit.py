"""`errauto submit PATCH...`: record now, let the daemon decide."""
from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from errauto_daemon import intake, output, progress
from errauto_daemon.commands.apply import read_patch_arg
from errauto_daemon.presence import running_pid, wake
from errauto_daemon.errors import EXIT_INTERNAL, EXIT_OK, EXIT_REJECTED, EXIT_REVIEW, FatalError
from errauto_daemon.store import DECIDED, Store, Submission

# When several patches were submitted, the exit code is the most severe.
_SEVERITY = [EXIT_OK, EXIT_REVIEW, EXIT_REJECTED, EXIT_INTERNAL]


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
    if not wake() and running_pid() is None:
        print("errauto: no daemon is running; the submissions wait in the queue until one starts "
              "(errauto daemon start)", file=sys.stderr)
    if wait:
        _wait(store, [s for s, _ in subs], timeout, progress.for_terminal(quiet))
        subs = [(store.get(s.id), created) for s, created in subs]
    if as_json:
        values = []
        for sub, created in subs:
            value = output.submission_json(sub, store.checks(sub.id) if wait else (), full=wait)
            value["duplicate"] = not created
            values.append(value)
        print(output.dumps(values if len(values) != 1 else values[0]))
    else:
        for sub, created in subs:
            lines = output.decision_lines(sub) if wait else [output.headline(sub)]
            if not created:
                lines[0] += f"  (the same patch as submission {sub.id})"
            print("\n".join(lines))
    if not wait:
        return EXIT_OK
    return worst([output.exit_code(s) for s, _ in subs])


def _wait(store: Store, subs: Sequence[Submission], timeout: float | None, shown: progress.Progress) -> None:
    """Until the daemon decided every submission; `shown` is told each state as it changes,
    starting with the state each was recorded in."""
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    seen: dict[int, str] = {}
    for sub in subs:
        if sub.id not in seen:
            seen[sub.id] = sub.state
            shown.state_changed(sub.id, sub.state, 0.0)
    pending = set(seen)
    try:
        while pending:
            for sub_id in sorted(pending):
                state = store.get(sub_id).state
                if seen.get(sub_id) != state:
                    seen[sub_id] = state
                    shown.state_changed(sub_id, state, time.monotonic() - started)
                if state in DECIDED:
                    pending.discard(sub_id)
            if pending and deadline is not None and time.monotonic() > deadline:
                raise FatalError(f"not decided within {timeout:g}s: "
                                 + ", ".join(f"#{i}" for i in sorted(pending)))
            if pending:
                time.sleep(0.1)
    finally:
        shown.finished()
