"""A loopback webhook receiver for the tests: it checks every request's signature the way the README tells
receivers to (`verify`), answers 401 to one that fails, and otherwise answers what the test scripted (200 by
default), recording each request with its raw body."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE = 300  # seconds a timestamp may be off before the request is refused as a replay


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> bool:
    """The receiver's check, as the README shows it: a recent timestamp, and the signature of
    `<timestamp>.<raw body>` under the shared secret, compared in constant time."""
    timestamp = headers.get("X-Creditbot-Timestamp", "")
    signature = headers.get("X-Creditbot-Signature", "")
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > TOLERANCE:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, f"v1={expected}")


@dataclass
class Received:
    """One request as it arrived, and what the receiver answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int
    at: float  # time.monotonic() on arrival


@dataclass
class Answer:
    """A scripted answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class WebhookReceiver:
    """`with WebhookReceiver(secret) as hook:` serves on 127.0.0.1 in a thread; `hook.url` is its address,
    `hook.script` the answers to give next (after the signature check), `hook.received` what came."""

    def __init__(self, secret: str, path: str = "/hook") -> None:
        self.secret = secret
        self.path = path
        self.script: list[Answer] = []
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.title(): v for k, v in self.headers.items()}  # one spelling per header name
                receiver._answer(self, headers, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the tests read `received`

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def _answer(self, request: BaseHTTPRequestHandler, headers: dict[str, str], body: bytes) -> None:
        verified = verify(self.secret, headers, body)
        with self._lock:
            if not verified:
                answer = Answer(401)
            elif request.path != self.path:
                answer = Answer(404)
            else:
                answer = self.script.pop(0) if self.script else Answer(200)
            self.received.append(Received(request.path, headers, body, verified, answer.status, time.monotonic()))
        request.send_response(answer.status)
        for name, value in answer.headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def delivered(self) -> list[Received]:
        """The requests answered with a 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
