"""The Flask application behind `errauto web`: its pages, and the checks every request passes."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from flask import Flask, Response, abort, g, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from errauto_daemon.store import ReadOnlyStore
from errauto_daemon.store.where import Where
from errauto_daemon.web import background, pages, security, trends


@dataclass(frozen=True)
class WebConfig:
    token: str
    db_path: Where | None = None  # the state database: a SQLite file or a server's URL (default: the configured one)
    page_size: int = 50
    who: str | None = None  # whose name decisions are recorded under (default: the user running the server)
    # The names the pages answer to (a request naming another host gets 403): on loopback, the
    # loopback names, so that a site whose name was made to point here (DNS rebinding) is refused.
    # None: any (behind a reverse proxy, which names the host).
    hosts: frozenset[str] | None = security.LOOPBACK_NAMES


def create_app(config: WebConfig) -> Flask:
    app = Flask(__name__)
    app.config.update(ERRAUTO=config, MAX_CONTENT_LENGTH=64 * 1024)
    app.jinja_env.autoescape = True  # every template, whatever its name ends with
    app.extensions["errauto_store"] = ReadOnlyStore(config.db_path)
    app.extensions["errauto_retries"] = background.Retries(config.db_path)
    csrf = security.csrf_for(config.token)

    @app.before_request
    def authenticate() -> BaseResponse | None:
        if config.hosts is not None and security.host_name(request.host) not in config.hosts:
            abort(403)
        given = request.args.get("token")
        if given is not None:
            if not security.matches(given, config.token):
                abort(403)
            return _without_token(config.token)
        if not security.matches(request.cookies.get(security.COOKIE), config.token):
            abort(403)
        if request.method == "POST" and not security.matches(request.form.get(security.CSRF_FIELD), csrf):
            abort(403)
        g.csrf = csrf
        return None

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers.update(security.HEADERS)
        return response

    @app.errorhandler(403)
    def refused(_error: Exception) -> tuple[str, int]:
        return render_template("refused.html"), 403

    pages.register(app)
    trends.register(app)
    return app


def _without_token(token: str) -> BaseResponse:
    """The same page without `?token=`, and the cookie that stands for it from now on."""
    rest = [(k, v) for k, vs in request.args.lists() if k != "token" for v in vs]
    target = request.path + (f"?{urlencode(rest)}" if rest else "")
    response = redirect(target, code=303)
    response.set_cookie(security.COOKIE, token, httponly=True, samesite="Strict", path="/")
    return response
