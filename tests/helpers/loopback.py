"""An HTTP server on 127.0.0.1 for test stand-ins (GitHub, Slack).

It serves on its own thread, one request at a time in a loop that checks
for a stop, and stops by itself after `lifetime` seconds if a test forgets.
Each request is handled on a thread of its own; closing the server joins
them, so a handler that holds its answer must wait on `stopping`, not sleep.
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar


class LoopbackServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler], *, name: str, lifetime: float) -> None:
        self.lifetime = lifetime
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = False  # so that server_close joins the handlers' threads
        self._server.timeout = 0.05
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _serve(self) -> None:
        deadline = time.monotonic() + self.lifetime
        try:
            while not self.stopping.is_set() and time.monotonic() < deadline:
                self._server.handle_request()
        finally:
            self.stopping.set()
            self._server.server_close()


Fake = TypeVar("Fake", bound="LoopbackFake")


class LoopbackFake:
    """A stand-in served by a LoopbackServer: `with` starts it, leaving stops it."""

    _loop: LoopbackServer

    def __enter__(self: Fake) -> Fake:
        self._loop.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._loop.stop()
