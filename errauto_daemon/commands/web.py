"""`errauto web`: serve the review pages on this machine until interrupted."""
from __future__ import annotations

import contextlib
import signal
import sys
import webbrowser
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from errauto_daemon import paths
from errauto_daemon.errors import FatalError
from errauto_daemon.store import Store

THREADS = 4  # requests served at once; a decision (a retry runs the checks) holds one

REMOTE_ADVICE = """\
errauto web: serving on {host}, which other machines may reach. The token is the only protection and
travels in clear over plain HTTP: put errauto web behind a reverse proxy that terminates TLS and asks
for real authentication (for example nginx or Caddy with basic auth or single sign-on), keep
errauto web on 127.0.0.1 and let the proxy forward to it; see docs/web.md."""


def token_file() -> Path:
    """Where a running `errauto web` keeps its token, for scripts and people on this account."""
    return paths.state_dir() / "web-token"


@contextlib.contextmanager
def _token_written(token: str) -> Iterator[Path]:
    path = paths.private_file(token_file())
    with open(path, "w") as f:
        f.write(token + "\n")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if path.read_text().strip() == token:  # not a newer server's
                path.unlink()


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(host: str, port: int, *, open_browser: bool, allow_remote: bool) -> int:
    from waitress.server import BaseWSGIServer, create_server

    from errauto_daemon.web import security
    from errauto_daemon.web.app import WebConfig, create_app

    if not security.is_loopback(host) and not allow_remote:
        raise FatalError(f"{host} is not a loopback address: other machines could reach the review pages; "
                         "serve on 127.0.0.1, or pass --allow-remote behind a reverse proxy (docs/web.md)")
    Store().close()  # the database exists and has this errauto's schema before a read-only reader opens it
    token = security.new_token()
    loopback = security.is_loopback(host)
    app = create_app(WebConfig(token=token, hosts=(security.LOOPBACK_NAMES | {host.strip("[]")}) if loopback else None))
    server = create_server(app, host=host, port=port, threads=THREADS, ident="errauto")
    assert isinstance(server, BaseWSGIServer)  # one address: one socket
    bound_host, bound_port = server.getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown_host}:{int(bound_port)}/?token={token}"
    if not loopback:
        print(REMOTE_ADVICE.format(host=host), file=sys.stderr)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with _token_written(token) as path:
            print(f"errauto web: serving the review pages at {url}", flush=True)
            print(f"errauto web: the token is also in {path}; Ctrl-C stops", flush=True)
            if open_browser:
                webbrowser.open(url)
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
    return 0


def cli(args: Namespace) -> int:
    """`errauto web`."""
    return serve(args.host, args.port, open_browser=args.open, allow_remote=args.allow_remote)
