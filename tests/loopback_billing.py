"""The HTTP side that the billing fakes of wave 2 share (`tests/fake_billing_a.py`, `tests/fake_breakdown.py`):
one loopback server for several providers, each under its own path prefix (`/<provider>/...`), recording
every request, serving a provider's lasting fault first, else its route."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from tests.fakes import RecordedRequest, Scripted

Answer = tuple[int, Any]


class BillingState(Protocol):
    """What the server needs of a fake's state."""

    lock: threading.Lock
    requests: list[RecordedRequest]
    faults: dict[str, Scripted]  # by provider ("relay") or provider and path ("relay/v1/..."): the path wins


S = TypeVar("S", bound=BillingState)
Route = Callable[[Any, str, dict[str, list[str]], dict[str, str]], Answer]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        provider, path, query = urlsplit_path(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.server.state
        with state.lock:
            state.requests.append(RecordedRequest(provider, path, query, headers, time.monotonic()))
            fault = state.faults.get(provider + path) or state.faults.get(provider)
        if fault is not None:
            self._send(fault.status, fault.encoded(), fault.headers)
            return
        route = self.server.routes.get(provider)
        if route is None:
            status, body = 404, {"error": {"message": f"no fake for {provider}"}}
        elif self.server.locked_routes:
            with state.lock:
                status, body = route(state, path, query, headers)
        else:
            status, body = route(state, path, query, headers)
        self._send(status, json.dumps(body).encode(), {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        content_type = headers.get("Content-Type", "text/html" if body.startswith(b"<") else "application/json")
        self.send_header("Content-Type", content_type)
        for key, value in headers.items():
            if key != "Content-Type":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def urlsplit_path(raw: str) -> tuple[str, str, dict[str, list[str]]]:
    """`/<provider>/<path>?<query>` as (provider, "/<path>", parsed query)."""
    parts = urlsplit(raw)
    segments = parts.path.strip("/").split("/", 1)
    return segments[0], "/" + (segments[1] if len(segments) > 1 else ""), parse_qs(parts.query)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: Any
    routes: Mapping[str, Route]
    locked_routes: bool


class LoopbackBilling(Generic[S]):
    """Runs a fake's state on 127.0.0.1 in a background thread, answering from its routes."""

    def __init__(self, state: S, routes: Mapping[str, Route], *, locked_routes: bool = False) -> None:
        """`locked_routes`: routes read the state under its lock (for states that tests change meanwhile)."""
        self.state = state
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = state
        self._server.routes = routes
        self._server.locked_routes = locked_routes
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def base_url(self, provider: str) -> str:
        """Base URL to configure for one provider's accounts."""
        return f"{self.url}/{provider}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
