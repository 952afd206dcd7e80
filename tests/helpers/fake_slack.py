"""A Slack incoming webhook on 127.0.0.1, for tests.

Records every request as it arrives (before answering), and answers as
scripted: `answer(status, body, headers, times, delay)` queues answers that
are used in order; once they are used up, every request gets Slack's
`200 ok`. A POST to any other path gets Slack's answer for a webhook that
does not exist: `404 no_service`. `delay` holds the answer that long, or until the server
stops (a slow Slack, or a request in flight while a test kills the sender).

The server stops by itself after `lifetime` seconds, if a test forgets to.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.helpers.loopback import LoopbackFake, LoopbackServer

SECRET_PATH = "/services/T0ERRAUTO/B0ERRAUTO/zK3cr3tW3bh00kT0k3n42"


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() when it arrived
    path: str
    headers: dict[str, str]
    body: Any  # decoded JSON, or the raw text
    status: int  # what it was answered (0: not yet)

    @property
    def text(self) -> str:
        """Everything the message says: its fallback text and every block."""
        if not isinstance(self.body, dict):
            return str(self.body)
        parts = [str(self.body.get("text", ""))]
        parts += [b.get("text", {}).get("text", "") for b in self.body.get("blocks", [])]
        return "\n".join(parts)


@dataclass
class Answer:
    status: int
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    delay: float = 0.0


class FakeSlack(LoopbackFake):
    def __init__(self, *, lifetime: float = 60.0, path: str = SECRET_PATH) -> None:
        self.path = path
        self.received: list[Received] = []
        self.script: list[Answer] = []
        self._lock = threading.Lock()
        self._loop = LoopbackServer(self._handler(), name="fake-slack", lifetime=lifetime)
        self.port = self._loop.port
        self.url = f"http://127.0.0.1:{self.port}{path}"

    # -- what tests use ------------------------------------------------------------

    def answer(self, status: int, body: str = "", *, headers: dict[str, str] | None = None,
               times: int = 1, delay: float = 0.0) -> None:
        with self._lock:
            self.script.append(Answer(status, body, headers or {}, times, delay))

    def accepted(self) -> list[Received]:
        """The messages Slack took (answered 2xx)."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def wait(self, n: int, timeout: float = 10.0, *, accepted: bool = False) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.accepted() if accepted else list(self.received)
            if len(found) >= n:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"fake Slack: waited for {n} requests, got {len(found)}: {found}")
            time.sleep(0.02)

    # -- the server ----------------------------------------------------------------

    def _next(self, path: str) -> Answer:
        with self._lock:
            if path != self.path:
                return Answer(404, "no_service")
            if self.script:
                answer = self.script[0]
                answer.times -= 1
                if answer.times <= 0:
                    self.script.pop(0)
                return answer
        return Answer(200, "ok")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(data)
                except ValueError:
                    body = data.decode(errors="replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = fake._next(self.path)
                with fake._lock:
                    index = len(fake.received)
                    fake.received.append(Received(time.monotonic(), self.path, headers, body, 0))
                if answer.delay:
                    fake._loop.stopping.wait(answer.delay)
                with fake._lock:
                    r = fake.received[index]
                    fake.received[index] = Received(r.at, r.path, r.headers, r.body, answer.status)
                payload = answer.body.encode()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client went away (killed mid-delivery)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
