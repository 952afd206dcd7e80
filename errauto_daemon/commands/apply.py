"""`errauto apply PATCH`: validate and route one patch now, in this process."""
from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

from errauto_daemon import inbox, intake, output, progress
from errauto_daemon.config import Config, with_thresholds
from errauto_daemon.domain import State
from errauto_daemon.errors import FatalError
from errauto_daemon.store import DECIDED, Store
from errauto_daemon.validate import Validator, wait_decided


def read_patch_arg(patch: str) -> tuple[bytes, str]:
    if patch == "-":
        return sys.stdin.buffer.read(), "stdin.patch"
    path = Path(patch)
    try:
        return path.read_bytes(), path.name
    except FileNotFoundError:
        raise FatalError(f"no such patch file: {patch}") from None
    except IsADirectoryError:
        raise FatalError(f"{patch} is a directory, not a patch file") from None
    except OSError as exc:
        raise FatalError(f"cannot read {patch}: {exc.strerror}") from None


def apply(patch: str, *, repo: str, target: str | None, auto_merge_threshold: float | None,
          pr_threshold: float | None, as_json: bool, quiet: bool = False) -> int:
    data, name = read_patch_arg(patch)
    store = Store()
    # Validated here and now: no job for a daemon to take (if this process dies first, the
    # daemons' sweep gives the queued submission one).
    result = intake.submit(store, repo, data, source="cli", name=name, target=target, queue_job=False)
    sub = result.submission

    def thresholds(config: Config) -> Config:
        if auto_merge_threshold is None and pr_threshold is None:
            return config
        return with_thresholds(config, auto_merge_threshold, pr_threshold)

    if sub.state == State.QUEUED:
        sub = Validator(store, config_hook=thresholds, progress=progress.for_terminal(quiet)).process(sub.id)
    if sub.state not in DECIDED:
        sub = wait_decided(store, sub.id)  # another process is validating it
    inbox.settle(store, sub)  # the same patch may have been dropped into an inbox too
    if as_json:
        value = output.submission_json(sub, store.checks(sub.id), full=True)
        value["duplicate"] = not result.created
        print(output.dumps(value))
    else:
        if not result.created:
            print(f"this patch was already submitted as #{sub.id}; showing its decision "
                  f"(`errauto queue retry {sub.id}` validates it again)")
        print("\n".join(output.decision_lines(sub)))
    return output.exit_code(sub)


# -- the command line (main.py dispatches each parsed command here) --------------

def cli(args: Namespace) -> int:
    """`errauto apply`."""
    return apply(args.patch, repo=args.repo, target=args.target,
                 auto_merge_threshold=args.auto_merge_threshold,
                 pr_threshold=args.pr_threshold, as_json=args.json, quiet=args.no_progress)
