"""The pages: the queue, a submission, and the forms that decide one.

Every page reads through the app's `ReadOnlyStore`; a decision opens the
writing `Store` for that request only and calls what the CLI's `queue
approve / reject / retry` call, so the rules and the records are the same.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, abort, current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from errauto_daemon import decisions, output, paths
from errauto_daemon.domain import Route, State
from errauto_daemon.errors import FatalError
from errauto_daemon.redact import redact
from errauto_daemon.store import CheckRow, QueueFilter, ReadOnlyStore, Store, Submission
from errauto_daemon.validate import RETRYABLE, gates_hit, retry_refused
from errauto_daemon.web import background, commits, diffview, scorechart, security

LOG_TAIL_LINES = 40
FULL_LOG_BYTES = 4 * 1024 * 1024  # a longer log is shown from its end


def register(app: Flask) -> None:
    app.add_url_rule("/", "queue", queue_page)
    app.add_url_rule("/submissions/<int:sub_id>", "submission", submission_page)
    app.add_url_rule("/submissions/<int:sub_id>/checks/<int:index>/log", "check_log", check_log)
    app.add_url_rule("/submissions/<int:sub_id>/patch", "patch", patch_text)
    app.add_url_rule("/submissions/<int:sub_id>/commits/<commit_id>", "commit", commit_page)
    app.add_url_rule("/submissions/<int:sub_id>/approve", "approve", approve, methods=["POST"])
    app.add_url_rule("/submissions/<int:sub_id>/reject", "reject", reject, methods=["POST"])
    app.add_url_rule("/submissions/<int:sub_id>/retry", "retry", retry, methods=["POST"])
    app.add_url_rule("/changes", "changes", changes)
    app.jinja_env.tests["match_git_line"] = _git_line
    app.jinja_env.globals.update(when=output.when, age=_age, repo_label=output.repo_label,
                                 csrf_field=security.CSRF_FIELD)


def _git_line(line: str) -> bool:
    """A file header line that says nothing the page does not show already."""
    return line.startswith(("diff --git ", "index "))


def _config() -> Any:
    return current_app.config["ERRAUTO"]


def _reader() -> ReadOnlyStore:
    store: ReadOnlyStore = current_app.extensions["errauto_store"]
    return store


def _age(ts: float) -> str:
    return output.age(time.time() - ts)


def _words(values: list[str], kind: Callable[[str], Any], known: set[str]) -> tuple[Any, ...]:
    return tuple(kind(v) for v in values if v in known)


def _filter() -> QueueFilter:
    args = request.args
    return QueueFilter(
        states=_words(args.getlist("state"), State, set(State)),
        routes=_words(args.getlist("route"), Route, set(Route)),
        repo=args.get("repo") or None,
        source=args.get("source") or None,
        title=(args.get("q") or "").strip() or None,
    )


def queue_page() -> str:
    wanted = _filter()
    below = request.args.get("below", type=int)
    store = _reader()
    page = store.queue_page(wanted, below=below, size=_config().page_size)
    kept = [(k, v) for k, vs in request.args.lists() if k != "below" for v in vs]
    older = _queue_url([*kept, ("below", str(page.older))]) if page.older is not None else None
    newest = _queue_url(kept) if below is not None else None
    return render_template("queue.html", page=page, wanted=wanted, choices=store.filter_choices(),
                           states=list(State), routes=list(Route), older=older, newest=newest,
                           change=store.last_change())


def _queue_url(pairs: list[tuple[str, str]]) -> str:
    return url_for("queue") + (f"?{urlencode(pairs)}" if pairs else "")


def _submission(sub_id: int) -> Submission:
    try:
        return _reader().get(sub_id)
    except FatalError:
        abort(404)


def submission_page(sub_id: int, *, problem: str | None = None, status: int = 200) -> tuple[str, int]:
    store = _reader()
    sub = _submission(sub_id)
    checks = store.checks(sub_id)
    try:
        patch = store.read_patch(sub.patch_sha256).decode("utf-8", errors="replace")
    except FileNotFoundError:
        patch = None
    view = diffview.of_text(redact(patch)) if patch is not None else None
    return render_template(
        "submission.html", sub=sub, problem=problem, words=output.explanation_lines(sub),
        chart=scorechart.chart(sub.explanation), merged=_merged_links(sub),
        checks=[_check(c) for c in checks], events=store.events(sub_id), view=view,
        config_problems=store.config_problems(sub.repo), gates=gates_hit(sub),
        can_approve=sub.state == State.AWAITING_REVIEW, can_retry=sub.state in RETRYABLE,
        can_reject=sub.state in (State.QUEUED, State.VALIDATING, State.AWAITING_REVIEW),
        pr_link=sub.pr_url if sub.pr_url and sub.pr_url.startswith(("https://", "http://")) else None,
        pr_line=output.pull_request_line(sub), change=store.last_change(sub_id),
    ), status


def _merged_links(sub: Submission) -> dict[str, str | None] | None:
    """Where the merged commit can be seen: errauto's own page, and GitHub's when the repository has one."""
    if not sub.merged_commit:
        return None
    return {"here": url_for("commit", sub_id=sub.id, commit_id=sub.merged_commit),
            "github": commits.github_commit_url(sub.repo, sub.target, sub.merged_commit)}


def patch_text(sub_id: int) -> BaseResponse:
    """The whole stored patch, as text: what the page leaves out of a huge one."""
    try:
        text = _reader().read_patch(_submission(sub_id).patch_sha256).decode("utf-8", errors="replace")
    except FileNotFoundError:
        abort(404)
    return current_app.response_class(output.printable(redact(text), keep="\t\n"), mimetype="text/plain")


def commit_page(sub_id: int, commit_id: str) -> str:
    """A commit of the submission's repository reachable from its target: message, author, diff."""
    sub = _submission(sub_id)
    shown = commits.read(sub.repo, sub.target, commit_id)
    if shown is None:
        abort(404)
    # No `change`: a commit never changes, so the page does not poll and is never drawn again.
    return render_template("commit.html", sub=sub, commit=shown, message=redact(shown.message),
                           view=diffview.of_text(redact(shown.patch)))


def _check(row: CheckRow) -> dict[str, Any]:
    """A check as the page shows it: its log's tail redacted once more (logs are redacted when written)."""
    return {"row": row, "failed": output.check_failed(row),
            "tail": [redact(line) for line in output.log_tail(row.log_path, LOG_TAIL_LINES)]}


def check_log(sub_id: int, index: int) -> BaseResponse:
    """A check's whole log (its end, if huge), as text, only from errauto's own log folder."""
    checks = _reader().checks(sub_id)
    if not 0 <= index < len(checks) or not checks[index].log_path:
        abort(404)
    path = Path(checks[index].log_path or "").resolve()
    if paths.check_logs_dir().resolve() not in path.parents:
        abort(404)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - FULL_LOG_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        abort(404)
    response = current_app.response_class(output.printable(redact(text), keep="\t\n"),
                                          mimetype="text/plain")
    return response


def _decided(sub_id: int, decide: Callable[[Store, str], object]) -> BaseResponse | tuple[str, int]:
    store = Store(_config().db_path)
    try:
        decide(store, _config().who or decisions.who())
    except FatalError as exc:
        return submission_page(sub_id, problem=redact(str(exc)), status=409)
    finally:
        store.close()
    return redirect(url_for("submission", sub_id=sub_id), code=303)


def approve(sub_id: int) -> BaseResponse | tuple[str, int]:
    _submission(sub_id)
    force = request.form.get("force") == "1"
    return _decided(sub_id, lambda store, who: decisions.approved(store, sub_id, who, force=force))


def reject(sub_id: int) -> BaseResponse | tuple[str, int]:
    _submission(sub_id)
    reason = " ".join(request.form.get("reason", "").split())
    if not reason:
        return submission_page(sub_id, problem="a rejection needs a reason", status=400)
    return _decided(sub_id, lambda store, who: decisions.rejected(store, sub_id, reason, who))


def retry(sub_id: int) -> BaseResponse | tuple[str, int]:
    """Validate again, beside the server (web/background.py): the page follows it as it runs."""
    sub = _submission(sub_id)
    force = request.form.get("force") == "1"
    refused = retry_refused(sub, force=force)
    if refused:
        return submission_page(sub_id, problem=refused, status=409)
    retries: background.Retries = current_app.extensions["errauto_retries"]
    if not retries.start(sub_id, _config().who or decisions.who(), force=force):
        return submission_page(sub_id, problem="a validation asked for here is still running", status=409)
    return redirect(url_for("submission", sub_id=sub_id), code=303)


def changes() -> BaseResponse:
    """What the pages poll: a number that grows with every change to any submission, or to the
    one named by `?submission=`."""
    return jsonify(change=_reader().last_change(request.args.get("submission", type=int)))
