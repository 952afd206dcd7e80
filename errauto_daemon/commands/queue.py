"""`errauto queue list / show / approve / reject / retry / process`."""
from __future__ import annotations

import os
import sys
import time
from argparse import Namespace
from collections.abc import Sequence

from errauto_daemon import inbox, merge, output, progress
from errauto_daemon.decisions import REJECT_WAIT, approved, rejected, retried, who
from errauto_daemon.domain import State
from errauto_daemon.errors import FatalError
from errauto_daemon.repo import open_repo, repo_root
from errauto_daemon.store import DECIDED, STATES, CheckRow, Store, Submission
from errauto_daemon.validate import Validator


def _repo_name(directory: str) -> str:
    """How errauto names the repository `directory` is in (as `watch` and intake do)."""
    try:
        return repo_root(open_repo(directory))
    except FatalError:
        # Gone or moved since: its submissions are still recorded under its old path.
        return os.path.realpath(directory).rstrip("/")


def _state(word: str) -> State:
    try:
        return State(word)
    except ValueError:
        raise FatalError(f"unknown state {word!r}; one of: {', '.join(STATES)}") from None


def list_(states: Sequence[str] | None, *, limit: int, as_json: bool, repo: str | None = None) -> int:
    wanted = [_state(s) for s in states or ()]
    store = Store()
    root = _repo_name(repo) if repo is not None else None
    subs = store.submissions(wanted, limit=limit, repo=root)
    if as_json:
        print(output.dumps([output.submission_json(s) for s in subs]))
        return 0
    if not subs:
        print("no submissions" + (f" in state {', '.join(states)}" if states else "")
              + (f" for {root}" if root else ""))
        return 0
    now = time.time()
    rows = [
        [str(s.id), s.state, s.route or "-",
         f"{s.confidence:.2f}" if s.confidence is not None else "-",
         output.age(now - s.created_at), output.repo_label(s), s.source, output.shorten(s.title, 40),
         output.shorten(s.reason or "", 60)]
        for s in subs
    ]
    print(output.table(["ID", "STATE", "ROUTE", "CONF", "AGE", "REPO", "SOURCE", "TITLE", "REASON"], rows))
    return 0


def show(sub_id: int, *, as_json: bool, diff: bool = False) -> int:
    store = Store()
    sub = store.get(sub_id)
    checks = store.checks(sub_id)
    if as_json:
        value = output.submission_json(sub, checks, full=True)
        for check, row in zip(value["checks"], checks, strict=True):
            if output.check_failed(row):
                check["log_tail"] = output.log_tail(row.log_path)
        value["events"] = store.events(sub_id)
        value["config_problem"] = next(({"error": p.error, "since": p.since}
                                        for p in store.config_problems(sub.repo)), None)
        if diff:
            value["diff"] = _patch_text(store, sub)
        print(output.dumps(value))
        return 0
    for line in _show_lines(store, sub, checks):
        print(output.printable(line, keep="\t"))
    if diff:
        print()
        text = output.printable(_patch_text(store, sub), keep="\t\n")
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


def _show_lines(store: Store, sub: Submission, checks: Sequence[CheckRow]) -> list[str]:
    """What `queue show` says about a submission; much of it came from the patch."""
    lines = output.decision_lines(sub)
    lines.append(f"  repo: {sub.repo} (target {sub.target})")
    for problem in store.config_problems(sub.repo):
        lines.append(f"  configuration: cannot be used since {output.when(problem.since)}, "
                     f"its patches wait: {problem.error}")
    lines.append(f"  source: {sub.source}" + (f" ({sub.source_detail})" if sub.source_detail else ""))
    if sub.author:
        lines.append(f"  author: {sub.author}")
    if sub.note:
        lines.append(f"  note: {sub.note}")
    lines.append(f"  patch: {sub.patch_path()}")
    pr_line = output.pull_request_line(sub)
    if pr_line:
        lines.append(f"  {pr_line}")
    if sub.base_commit:
        lines.append(f"  validated on: {sub.base_commit}")
    if checks:
        lines.append("  checks:")
        for c in checks:
            summary = f"    {c.name}: {c.status}, {c.detail}, {c.duration:.2f}s"
            if not output.check_failed(c):
                lines.append(f"{summary}  (log: {c.log_path})")
                continue
            lines.append(summary)
            lines += [f"      | {line}" for line in output.log_tail(c.log_path)]
            lines.append(f"      (log: {c.log_path})")
    lines.append("  history:")
    for e in store.events(sub.id):
        change = f"{e['from_state'] or ''} -> {e['to_state']}" if e["to_state"] else e["kind"]
        lines.append(f"    {output.when(e['ts'])}  {change}" + (f"  ({e['detail']})" if e["detail"] else ""))
    return lines


def _patch_text(store: Store, sub: Submission) -> str:
    try:
        data = store.read_patch(sub.patch_sha256)
    except FileNotFoundError:
        raise FatalError(f"the stored patch of submission {sub.id} is missing: {sub.patch_path()}") from None
    return data.decode("utf-8", errors="replace")


def approve(sub_id: int, *, force: bool, as_json: bool) -> int:
    store = Store()
    return _print_decision(store, approved(store, sub_id, who(), force=force), as_json)


def reject(sub_id: int, reason: str, *, as_json: bool = False, wait: float = REJECT_WAIT) -> int:
    """Reject a submission that is queued, held for review, or being validated.

    One being validated (by the daemon, `errauto apply` or `queue process`,
    in any process) gets a cancel request in the store: its validator stops,
    kills the running check's process group, and records the rejection. Once
    the request is recorded, the submission can no longer be merged or
    opened as a pull request; if its merge or pull request began first, the
    reject is refused (exit 2) and says how it ended.
    """
    store = Store()
    sub = rejected(store, sub_id, reason, who(), wait=wait)
    print(output.dumps(output.submission_json(sub)) if as_json else output.headline(sub))
    if sub.state != State.REJECTED:
        print(f"errauto: #{sub_id} is being rejected: its validation stops at its next step "
              f"(`errauto queue show {sub_id}`)", file=sys.stderr)
    return 0


def retry(sub_id: int, *, force: bool = False, as_json: bool, quiet: bool = False) -> int:
    store = Store()
    sub = retried(store, sub_id, who(), force=force, observer=progress.for_terminal(quiet))
    return _print_decision(store, sub, as_json)




def process(repo: str | None, *, limit: int | None, as_json: bool, quiet: bool = False) -> int:
    """Decide what is queued, oldest first, in this process: cron without a daemon.

    Safe beside a running daemon: each submission is taken under its hold
    and claimed with a compare-and-set, so one the daemon (or an `apply`) is
    working on is skipped. First, merges and validations a killed process
    left half-done are repaired (both also only under their locks).
    """
    from errauto_daemon.commands.submit import worst

    store = Store()
    root = _repo_name(repo) if repo is not None else None
    validator = Validator(store, progress=progress.for_terminal(quiet))
    merge.repair_all()
    decided: list[Submission] = []
    failure: BaseException | None = None
    for sub in validator.recover(repo=root):
        inbox.settle(store, sub)
        if sub.state in DECIDED:
            decided.append(_report(sub, as_json))
    for sub_id in store.queued_ids(limit=limit or 1_000_000, repo=root):
        try:
            sub = validator.process(sub_id)
        except Exception as exc:  # recorded as failed; the others are still decided
            failure = failure or exc
            sub = store.get(sub_id)
        inbox.settle(store, sub)
        if sub.state not in DECIDED:
            print(f"errauto: #{sub.id} skipped: another process is validating it", file=sys.stderr)
            continue
        decided.append(_report(sub, as_json))
    if as_json:
        print(output.dumps([output.submission_json(s) for s in decided]))
    if failure is not None and not isinstance(failure, FatalError):
        raise failure  # its traceback goes to a crash log; every other submission was decided
    return worst([output.exit_code(s) for s in decided])


def _report(sub: Submission, as_json: bool) -> Submission:
    """One line per decision, as it happens (a rejection says why)."""
    if not as_json:
        why = f"  ({output.shorten(sub.reason, 120)})" if sub.state in (State.REJECTED, State.FAILED) and sub.reason else ""
        print(output.headline(sub) + why, flush=True)
    return sub


def _print_decision(store: Store, sub: Submission, as_json: bool) -> int:
    if as_json:
        print(output.dumps(output.submission_json(sub, store.checks(sub.id), full=True)))
    else:
        print("\n".join(output.decision_lines(sub)))
    return output.exit_code(sub)


# -- the command line (main.py dispatches each parsed command here) --------------

def cli_list(args: Namespace) -> int:
    """`errauto queue list`."""
    return list_(args.status, limit=args.limit, as_json=args.json, repo=args.repo)


def cli_show(args: Namespace) -> int:
    """`errauto queue show`."""
    return show(args.id, as_json=args.json, diff=args.diff)


def cli_approve(args: Namespace) -> int:
    """`errauto queue approve`."""
    return approve(args.id, force=args.force, as_json=args.json)


def cli_reject(args: Namespace) -> int:
    """`errauto queue reject`."""
    return reject(args.id, args.reason, as_json=args.json)


def cli_retry(args: Namespace) -> int:
    """`errauto queue retry`."""
    return retry(args.id, force=args.force, as_json=args.json, quiet=args.no_progress)


def cli_process(args: Namespace) -> int:
    """`errauto queue process`."""
    return process(args.repo, limit=args.limit, as_json=args.json, quiet=args.no_progress)
