"""The `errauto` command line: one parser, one function per subcommand.

Exit codes are shared by every command that decides a patch (see errors.py):
0 merged or PR opened, 1 held for review, 2 usage error, 3 internal error,
4 rejected, 5 configuration error (or an unusable state directory);
`submit --wait` also 6 no daemon running (or it stopped), 7 still undecided
after `--timeout`. Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import os
import platform
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence

from errauto_daemon import __version__, paths
from errauto_daemon.errors import EXIT_INTERNAL, FatalError, printable
from errauto_daemon.git import GitError


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="errauto",
        description="Validate candidate fix patches in isolated worktrees, score them, and route them.",
    )
    parser.add_argument("--version", action="version", version=f"errauto {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="what to do; errauto COMMAND --help for more")
    sub.required = True

    p = sub.add_parser("apply", help="validate a patch and route it now, in this process")
    p.add_argument("patch", help="a .patch / .diff / .eml / .mbox file, or - for standard input")
    p.add_argument("--repo", default=".", help="the git repository (default: the current directory)")
    p.add_argument("--target", help="the target branch (default: from the config)")
    p.add_argument("--auto-merge-threshold", type=_threshold, metavar="X",
                   help="merge by itself at or above this confidence (default: from the config)")
    p.add_argument("--pr-threshold", type=_threshold, metavar="Y",
                   help="open a pull request at or above this confidence (default: from the config)")
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    p.add_argument("--quiet", "-q", dest="no_progress", action="store_true",
                   help="no progress on the terminal while checks run (the decision is still printed)")

    q = sub.add_parser("queue", help="list, inspect and decide submissions")
    qsub = q.add_subparsers(dest="queue_command", metavar="ACTION", help="what to do with the queue")
    qsub.required = True
    ql = qsub.add_parser("list", help="list submissions, newest first")
    ql.add_argument("--status", action="append", metavar="STATE",
                    help="only this state (repeatable): queued, validating, merged, pr_open, "
                         "awaiting_review, rejected, failed")
    ql.add_argument("--repo", metavar="DIR", help="only submissions to the repository DIR is in")
    ql.add_argument("--limit", type=_positive_int, default=50, help="at most this many (default 50)")
    ql.add_argument("--json", action="store_true", help="print the submissions as JSON")
    qs = qsub.add_parser("show", help="one submission: checks and why they failed, explanation, history")
    qs.add_argument("id", type=int, help="the submission's id")
    qs.add_argument("--diff", action="store_true", help="also print the patch")
    qs.add_argument("--json", action="store_true", help="print the submission as JSON")
    qa = qsub.add_parser("approve", help="merge a submission held for review")
    qa.add_argument("id", type=int, help="the submission's id")
    qa.add_argument("--force", action="store_true",
                    help="merge even though it hit a gate (failed tests, protected paths, review only); "
                         "recorded in its history")
    qa.add_argument("--json", action="store_true", help="print the decision as JSON")
    qr = qsub.add_parser("reject", help="reject a submission held for review")
    qr.add_argument("id", type=int, help="the submission's id")
    qr.add_argument("--reason", required=True, help="why (kept with the submission and shown in alerts)")
    qr.add_argument("--json", action="store_true", help="print the submission as JSON")
    qr.add_argument("--quiet", "-q", action="store_true", help="print nothing when it worked")
    qt = qsub.add_parser("retry", help="validate a submission again now")
    qt.add_argument("id", type=int, help="the submission's id")
    qt.add_argument("--force", action="store_true",
                    help="validate it again even though a person rejected it; recorded in its history")
    qt.add_argument("--json", action="store_true", help="print the decision as JSON")
    qt.add_argument("--quiet", "-q", dest="no_progress", action="store_true",
                    help="no progress on the terminal while checks run (the decision is still printed)")
    qp = qsub.add_parser("process", help="validate and route everything queued, oldest first, in this "
                                         "process (for cron and CI machines without a daemon)")
    qp.add_argument("--repo", metavar="DIR", help="only the submissions of the repository DIR is in "
                                                  "(default: all)")
    qp.add_argument("--limit", type=_positive_int, metavar="N", help="decide at most N submissions")
    qp.add_argument("--json", action="store_true", help="print the decisions as a JSON list")
    qp.add_argument("--quiet", "-q", dest="no_progress", action="store_true",
                    help="no progress on the terminal while checks run (the decisions are still printed)")

    sm = sub.add_parser("submit", help="record patches for the daemon and return (or --wait)")
    sm.add_argument("patches", nargs="+", metavar="PATCH", help="patch files (as for apply)")
    sm.add_argument("--repo", default=".", help="the git repository (default: the current directory)")
    sm.add_argument("--target", help="the target branch (default: from the config)")
    sm.add_argument("--note", help="a note kept with the submission")
    sm.add_argument("--wait", action="store_true", help="block until decided; exit like `apply`")
    sm.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    sm.add_argument("--json", action="store_true", help="print the submissions (or decisions) as JSON")
    sm.add_argument("--quiet", "-q", dest="no_progress", action="store_true",
                    help="with --wait: no progress on the terminal (the decisions are still printed)")

    dm = sub.add_parser("daemon", help="run, start, stop or inspect the daemon")
    dsub = dm.add_subparsers(dest="daemon_command", metavar="ACTION", help="what to do with the daemon")
    dsub.required = True
    for name, text in (("run", "run in the foreground (for systemd and debugging)"),
                       ("start", "start in the background; returns once it is ready")):
        dp = dsub.add_parser(name, help=text)
        dp.add_argument("--workers", type=_positive_int, help="validations at once (default: from config)")
        dp.add_argument("--grace", type=float, default=30.0,
                        help="seconds running validations may finish after SIGTERM (default 30)")
        dp.add_argument("--verbose", action="store_true",
                        help="debug logging (events, scans, claims), also to stderr")
        dp.add_argument("--rescan", type=float, default=30.0,
                        help="seconds between full inbox and ref rescans (default 30)")
        if name == "run":
            dp.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
        else:
            dp.add_argument("--json", action="store_true", help="print the pid and log path as JSON")
            dp.add_argument("--quiet", "-q", action="store_true", help="print nothing when it worked")
    dt = dsub.add_parser("stop", help="stop gracefully")
    dt.add_argument("--json", action="store_true", help="print what was stopped as JSON")
    dt.add_argument("--quiet", "-q", action="store_true", help="print nothing when it worked")
    ds = dsub.add_parser("status", help="pid, uptime, watched repositories, queue")
    ds.add_argument("--json", action="store_true", help="print the status as JSON")
    df = dsub.add_parser("forget", help="remove a machine taken out of service from the workers `monitor` grades")
    df.add_argument("host", help="the machine's name, as `daemon status` shows it")
    df.add_argument("--home", help="only its daemon with this state directory")
    df.add_argument("--json", action="store_true", help="print how many were removed as JSON")
    di = dsub.add_parser("install-service", help="write a systemd user unit")
    di.add_argument("--force", action="store_true", help="replace an existing unit")
    di.add_argument("--json", action="store_true", help="print the unit's path as JSON")

    w = sub.add_parser("watch", help="the repositories the daemon watches")
    wsub = w.add_subparsers(dest="watch_command", metavar="ACTION", help="what to do")
    wsub.required = True
    wa = wsub.add_parser("add", help="watch a repository")
    wa.add_argument("dir", nargs="?", default=".", help="a directory in the repository (default: the current one)")
    wa.add_argument("--json", action="store_true", help="print the repository and its inbox as JSON")
    wa.add_argument("--quiet", "-q", action="store_true", help="print nothing when it worked")
    wl = wsub.add_parser("list", help="list watched repositories")
    wl.add_argument("--json", action="store_true", help="print the repositories as JSON")
    wr = wsub.add_parser("remove", help="stop watching a repository")
    wr.add_argument("dir", nargs="?", default=".", help="a directory in the repository (default: the current one)")
    wr.add_argument("--json", action="store_true", help="print the repository as JSON")
    wr.add_argument("--quiet", "-q", action="store_true", help="print nothing when it worked")

    h = sub.add_parser("hooks", help="install or remove errauto's git hooks")
    hsub = h.add_subparsers(dest="hooks_command", metavar="ACTION", help="what to do")
    hsub.required = True
    hi = hsub.add_parser("install", help="pre-commit, post-commit and pre-push hooks (post-receive with --server)")
    hi.add_argument("--repo", default=".", help="the git repository (default: the current directory)")
    hi.add_argument("--server", action="store_true", help="install the post-receive hook (default for bare repositories)")
    hi.add_argument("--force", action="store_true", help="replace hooks errauto did not write (they are kept as backups)")
    hi.add_argument("--json", action="store_true", help="print the hooks installed as JSON")
    hi.add_argument("--quiet", "-q", action="store_true", help="print nothing when it worked")
    hu = hsub.add_parser("uninstall", help="remove errauto's hooks, restore the ones they replaced")
    hu.add_argument("--repo", default=".", help="the git repository (default: the current directory)")
    hu.add_argument("--json", action="store_true", help="print the hooks removed as JSON")
    hu.add_argument("--quiet", "-q", action="store_true", help="print nothing when it worked")

    # Called by the installed hooks, not by people: no help= keeps it out of the command list.
    hk = sub.add_parser("hook-impl", description="what errauto's git and pre-commit hooks run")
    hksub = hk.add_subparsers(dest="hook", metavar="HOOK", help="the hook")
    hksub.required = True
    hks = hksub.add_parser("submit", help="the old name of check (it only checks now)")
    hks.add_argument("files", nargs="*", help="the patch files the framework passes")
    hkc = hksub.add_parser("check", help="check staged patch files, record nothing (pre-commit framework)")
    hkc.add_argument("files", nargs="*", help="the patch files the framework passes")
    hkp = hksub.add_parser("post-commit", help="submit the patch files the new commit added or changed")
    hkp.add_argument("--files", dest="only", metavar="REGEX",
                     help="submit only committed patch files whose path matches (as pre-commit's files:)")
    for name in ("status", "pre-commit", "pre-push"):
        hp = hksub.add_parser(name, help=f"the {name} hook")
        hp.add_argument("--fail-on", choices=("warning", "critical"),
                        help="exit non-zero (blocking the commit or push) at this level or worse")
        hp.add_argument("args", nargs="*", help=argparse.SUPPRESS)  # what git passes to pre-push
    hksub.add_parser("post-receive", help="the server hook: ref updates on standard input")

    s = sub.add_parser("status", help="how the pipeline has been doing: routes, rates, times, queue, alerts")
    s.add_argument("--days", type=_positive_int, default=30, metavar="N",
                   help="the window, in days (default 30)")
    s.add_argument("--json", action="store_true", help="print the numbers as JSON")

    mo = sub.add_parser("monitor", help="one health level for people and cron: exit 0 ok, 1 warning, 2 critical")
    mo.add_argument("--json", action="store_true", help="print the level and every criterion as JSON")
    mo.add_argument("--deliver", type=float, default=10.0, metavar="S",
                    help="without a daemon, deliver waiting alerts for up to S seconds (default 10; 0: never)")

    i = sub.add_parser("init", help="write a starter .errauto.toml and create the inbox folder")
    i.add_argument("--repo", default=".", help="the git repository (default: the current directory)")
    i.add_argument("--quiet", "-q", action="store_true", help="print nothing when it worked")
    i.add_argument("--force", action="store_true", help="overwrite an existing .errauto.toml")
    i.add_argument("--no-run", action="store_true",
                   help="do not run the detected checks on the current commit (only check their tools exist)")

    w = sub.add_parser("web", help="review the queue in a browser: serve its pages on this machine")
    w.add_argument("--host", default="127.0.0.1",
                   help="the address to serve on (default 127.0.0.1; another needs --allow-remote)")
    w.add_argument("--port", type=int, default=8470, metavar="N", help="the port (default 8470; 0: any free one)")
    w.add_argument("--open", action="store_true", help="open the pages in the default browser")
    w.add_argument("--allow-remote", action="store_true",
                   help="serve on an address other machines can reach (put a reverse proxy with real "
                        "authentication in front: docs/web.md)")

    db = sub.add_parser("db", help="the state database: where it is, and its schema")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True, help="what to do with it")
    dbm = dbsub.add_parser("migrate", help="create the schema, or upgrade it to this errauto's")
    dbm.add_argument("--json", action="store_true", help="print the result as JSON")
    dbs = dbsub.add_parser("status", help="which database this errauto uses, and its schema")
    dbs.add_argument("--json", action="store_true", help="print it as JSON")

    d = sub.add_parser("demo", help="run errauto on a temporary repository with sample patches")
    d.add_argument("--dir", help="make the demo here instead of a temporary directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:
        _complete(parser)
    args = parser.parse_args(argv)
    try:
        with _quiet(getattr(args, "quiet", False)):
            return _dispatch(args)
    except FatalError as exc:
        from errauto_daemon.redact import redact

        print(f"errauto: {printable(redact(str(exc)))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("errauto: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`errauto queue list | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:
        what = type(exc).__name__
        if isinstance(exc, GitError):  # which git command failed, in git's words
            from errauto_daemon.redact import redact

            what += f": {redact(str(exc))}"
        try:
            path = _write_crash_log(argv)
        except (OSError, FatalError) as log_error:
            # Nowhere to write the log: the traceback goes to the terminal instead.
            from errauto_daemon.redact import redact

            print(redact("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
            print(f"errauto: internal error ({what}); the log could not be written: {log_error}",
                  file=sys.stderr)
            return EXIT_INTERNAL
        print(f"errauto: internal error ({what}); a log with the traceback was written to {path}",
              file=sys.stderr)
        return EXIT_INTERNAL


def _complete(parser: argparse.ArgumentParser) -> None:
    """Shell completion when the optional argcomplete is installed (it exits here)."""
    try:
        argcomplete = importlib.import_module("argcomplete")
    except ImportError:
        return
    argcomplete.autocomplete(parser, exclude=["hook-impl"])


@contextlib.contextmanager
def _quiet(quiet: bool) -> Iterator[None]:
    """--quiet: what a command prints on success goes nowhere; errors still reach stderr."""
    if not quiet:
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


# Where each subcommand's action is named in the parsed arguments.
_ACTIONS = {"queue": "queue_command", "daemon": "daemon_command", "watch": "watch_command",
            "hooks": "hooks_command", "hook-impl": "hook", "db": "db_command"}

# (command, action) -> the module in commands/ and its function that takes the parsed
# arguments. Only that module is imported: hooks start without the daemon's weight.
COMMANDS: dict[tuple[str, str | None], tuple[str, str]] = {
    ("apply", None): ("apply", "cli"),
    ("queue", "list"): ("queue", "cli_list"),
    ("queue", "show"): ("queue", "cli_show"),
    ("queue", "approve"): ("queue", "cli_approve"),
    ("queue", "reject"): ("queue", "cli_reject"),
    ("queue", "retry"): ("queue", "cli_retry"),
    ("queue", "process"): ("queue", "cli_process"),
    ("submit", None): ("submit", "cli"),
    ("daemon", "run"): ("daemon", "cli_run"),
    ("daemon", "start"): ("daemon", "cli_start"),
    ("daemon", "stop"): ("daemon", "cli_stop"),
    ("daemon", "status"): ("daemon", "cli_status"),
    ("daemon", "forget"): ("daemon", "cli_forget"),
    ("daemon", "install-service"): ("daemon", "cli_install_service"),
    ("watch", "add"): ("watch", "cli_add"),
    ("watch", "list"): ("watch", "cli_list"),
    ("watch", "remove"): ("watch", "cli_remove"),
    ("hooks", "install"): ("hooks", "cli_install"),
    ("hooks", "uninstall"): ("hooks", "cli_uninstall"),
    ("hook-impl", "submit"): ("hook_impl", "cli_submit"),
    ("hook-impl", "check"): ("hook_impl", "cli_check"),
    ("hook-impl", "post-commit"): ("hook_impl", "cli_post_commit"),
    ("hook-impl", "status"): ("hook_impl", "cli_status"),
    ("hook-impl", "pre-commit"): ("hook_impl", "cli_pre_commit"),
    ("hook-impl", "pre-push"): ("hook_impl", "cli_status"),
    ("hook-impl", "post-receive"): ("hook_impl", "cli_post_receive"),
    ("status", None): ("status", "cli"),
    ("monitor", None): ("monitor", "cli"),
    ("init", None): ("init", "cli"),
    ("demo", None): ("demo", "cli"),
    ("web", None): ("web", "cli"),
    ("db", "migrate"): ("db", "cli_migrate"),
    ("db", "status"): ("db", "cli_status"),
}


def command_handler(command: str, action: str | None) -> Callable[[argparse.Namespace], int]:
    module, function = COMMANDS[(command, action)]
    handler: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(f"errauto_daemon.commands.{module}"), function)
    return handler


def _dispatch(args: argparse.Namespace) -> int:
    action = getattr(args, _ACTIONS[args.command]) if args.command in _ACTIONS else None
    return command_handler(args.command, action)(args)


def _write_crash_log(argv: Sequence[str] | None) -> str:
    import pygit2

    from errauto_daemon.redact import redact

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = paths.log_dir() / f"crash-{stamp}-{os.getpid()}.log"
    text = "\n".join([
        "### errauto crash log",
        f"errauto {__version__}",
        f"python {platform.python_version()} ({sys.executable})",
        f"pygit2 {getattr(pygit2, '__version__', '?')}, libgit2 {pygit2.LIBGIT2_VERSION}",
        f"platform {platform.platform()}",
        f"argv {list(sys.argv if argv is None else argv)!r}",
        "",
        traceback.format_exc(),
    ])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(redact(text))
    return str(path)
