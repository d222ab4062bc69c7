"""A loopback fake of the Slack Web API and of `response_url`, for the real slack_sdk client to talk to.

Answers auth.test, chat.postMessage, the three files_upload_v2 steps, views.publish, users.info and
response_url posts; records every call; can answer 429 with Retry-After or 5xx on demand.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

TEAM = "T111"
SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-bot-token-0123456789"


@dataclass
class SlackCall:
    """One request the fake received."""

    path: str
    data: dict[str, Any]
    at: float


@dataclass
class SlackState:
    """What the fake knows and how it should misbehave."""

    admins: set[str] = field(default_factory=set)
    rate_limited: int = 0  # answer this many chat.postMessage calls with 429
    retry_after: str = "1"  # the Retry-After of those 429s
    failing: int = 0  # answer this many chat.postMessage calls with 500
    failing_status: int = 500  # the status of those failures (e.g. 503)
    failing_uploads: int = 0  # answer this many files.getUploadURLExternal calls with an error
    # Public channels the bot was not invited to: posting works (chat:write.public), sharing a file does not.
    not_member: set[str] = field(default_factory=set)
    # Seconds each chat.postMessage is held after it was received (and recorded) before it is answered, so
    # that a client can be killed while its post is in flight; setting it back to 0 releases held posts.
    post_delay: float = 0.0
    socket_url: str | None = None  # what apps.connections.open hands out (Socket Mode)
    # Web API method -> how many of its next calls are dropped: the connection closes without an answer, as
    # when the network fails on the way.
    dropped: dict[str, int] = field(default_factory=dict)
    # Slack's pacing, when set: chat.postMessage per channel at most once per `channel_interval` seconds,
    # and at most `workspace_per_second` Web API calls in any moving one-second window; beyond, 429.
    channel_interval: float | None = None
    workspace_per_second: int | None = None
    throttled: int = 0  # how many calls were answered 429 by the pacing above
    accepted: list[float] = field(default_factory=list)
    last_post: dict[str, float] = field(default_factory=dict)
    posted: dict[str, int] = field(default_factory=dict)  # chat.postMessage calls answered ok, per channel
    calls: list[SlackCall] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def called(self, path: str) -> list[SlackCall]:
        """Calls to one path (e.g. `/api/chat.postMessage`)."""
        with self.lock:
            return [c for c in self.calls if c.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 10.0) -> list[SlackCall]:
        """Wait until a path was called `count` times; return those calls."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.called(path)
            if len(calls) >= count:
                return calls
            time.sleep(0.02)
        raise AssertionError(f"{path} called {len(self.called(path))} times, expected {count}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _data(self) -> dict[str, Any]:
        parts = urlsplit(self.path)
        data: dict[str, Any] = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        kind = self.headers.get("Content-Type", "")
        if "json" in kind and raw:
            data.update(json.loads(raw))
        elif "x-www-form-urlencoded" in kind and raw:
            data.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
        elif raw:
            data["_bytes"] = len(raw)
        data["_auth"] = self.headers.get("Authorization", "")
        return data

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        path = urlsplit(self.path).path
        data = self._data()
        state = self.server.state
        with state.lock:
            state.calls.append(SlackCall(path, data, time.monotonic()))
        if path == "/_stats":  # for a benchmark that runs the fake in another process
            with state.lock:
                self._reply(200, {"posts": state.posted, "throttled": state.throttled})
            return
        if path.startswith("/_arrival/"):  # when a response_url post arrived (time.monotonic), waiting for it
            (call,) = state.wait_for("/webhook/" + path.removeprefix("/_arrival/"), timeout=30)[:1]
            self._reply(200, {"at": call.at})
            return
        if path.startswith("/webhook/") or path.startswith("/upload/"):
            self._reply(200, "ok", "text/plain")
            return
        method = path.removeprefix("/api/")
        with state.lock:
            drop = state.dropped.get(method, 0) > 0
            if drop:
                state.dropped[method] -= 1
        if drop:
            self.close_connection = True
            return
        if method == "apps.connections.open":
            # Slack: an app-level token gets a WebSocket URL; a bot token is the wrong kind; others are refused.
            if data["_auth"].endswith(APP_TOKEN):
                base = f"ws://127.0.0.1:{self.server.server_address[1]}"
                self._reply(200, {"ok": True, "url": state.socket_url or f"{base}/no-socket-server"})
            elif data["_auth"].endswith(BOT_TOKEN):
                self._reply(200, {"ok": False, "error": "not_allowed_token_type"})
            else:
                self._reply(200, {"ok": False, "error": "invalid_auth"})
            return
        if not data["_auth"].endswith(BOT_TOKEN):
            self._reply(200, {"ok": False, "error": "invalid_auth"})
            return
        retry_after = self._over_limits(method, data)
        if retry_after is not None:
            self._reply(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": str(retry_after)})
            return
        if method == "chat.postMessage":
            with state.lock:
                if state.rate_limited > 0:
                    state.rate_limited -= 1
                    self._reply(
                        429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": state.retry_after}
                    )
                    return
                if state.failing > 0:
                    state.failing -= 1
                    self._reply(state.failing_status, {"ok": False, "error": "internal_error"})
                    return
        if method == "files.getUploadURLExternal":
            with state.lock:
                if state.failing_uploads > 0:
                    state.failing_uploads -= 1
                    self._reply(200, {"ok": False, "error": "internal_error"})
                    return
        if method == "files.completeUploadExternal" and data.get("channel_id") in state.not_member:
            self._reply(200, {"ok": False, "error": "not_in_channel"})
            return
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if method == "chat.postMessage" and state.post_delay > 0:
            release = time.monotonic() + state.post_delay
            while state.post_delay > 0 and time.monotonic() < release:
                time.sleep(0.01)
        if method == "chat.postMessage":
            with state.lock:
                channel = str(data.get("channel"))
                state.posted[channel] = state.posted.get(channel, 0) + 1
        answers: dict[str, Any] = {
            "auth.test": {"ok": True, "team_id": TEAM, "team": "Test", "user_id": "UBOT", "bot_id": "B1"},
            "chat.postMessage": {"ok": True, "channel": data.get("channel"), "ts": f"{time.time():.6f}"},
            "files.getUploadURLExternal": {"ok": True, "upload_url": f"{base}/upload/F1", "file_id": "F1"},
            "files.completeUploadExternal": {"ok": True, "files": [{"id": "F1", "title": "chart"}]},
            "views.publish": {"ok": True, "view": {"id": "V1"}},
            "users.info": {
                "ok": True,
                "user": {"id": data.get("user"), "is_admin": data.get("user") in state.admins, "is_owner": False},
            },
        }
        self._reply(200, answers.get(method, {"ok": True}))

    def _over_limits(self, method: str, data: dict[str, Any]) -> int | None:
        """Seconds to wait if this call breaks the configured pacing (it is then not counted), else None."""
        state = self.server.state
        now = time.monotonic()
        with state.lock:
            if state.workspace_per_second is not None:
                state.accepted = [t for t in state.accepted if now - t < 1.0]
                if len(state.accepted) >= state.workspace_per_second:
                    state.throttled += 1
                    return 1
            channel = str(data.get("channel"))
            if state.channel_interval is not None and method == "chat.postMessage":
                last = state.last_post.get(channel)
                if last is not None and now - last < state.channel_interval:
                    state.throttled += 1
                    return 1
                state.last_post[channel] = now
            if state.workspace_per_second is not None:
                state.accepted.append(now)
        return None

    def _reply(
        self, status: int, body: Any, kind: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: SlackState

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed while its request was held: answering it fails, which is expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeSlack:
    """Runs the fake on 127.0.0.1 in a background thread."""

    def __init__(self) -> None:
        self.state = SlackState()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the fake."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        """What SLACK_API_URL should be."""
        return f"{self.url}/api/"

    def response_url(self, name: str = "1") -> str:
        """A `response_url` that lands on this fake."""
        return f"{self.url}/webhook/{name}"

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def signed_headers(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack would send with this body (v0 HMAC-SHA256 signature)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slash_body(
    text: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    team: str = TEAM,
    response_url: str = "http://127.0.0.1:9/webhook",
) -> str:
    """The form body of a `/credits` slash command."""
    return urlencode(
        {
            "token": "legacy",
            "team_id": team,
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": "someone",
            "command": "/credits",
            "text": text,
            "response_url": response_url,
            "trigger_id": "1.1.x",
            "api_app_id": "A1",
        }
    )


APP_TOKEN = "xapp-test-app-token-0123456789"


class FakeSocketMode:
    """A loopback Socket Mode WebSocket server (aiohttp, own thread and loop) that pushes envelopes."""

    def __init__(self) -> None:
        import asyncio

        self.received: list[dict[str, Any]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._sockets: list[Any] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        """The wss URL handed out by apps.connections.open."""
        return f"ws://127.0.0.1:{self.port}/link"

    def _run(self) -> None:
        import asyncio

        from aiohttp import WSMsgType, web

        async def link(request: web.Request) -> web.WebSocketResponse:
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            self._sockets.append(socket)
            await socket.send_json(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "connection_info": {"app_id": "A1"},
                    "debug_info": {"host": "fake", "approximate_connection_time": 3600},
                }
            )
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    self.received.append(json.loads(message.data))
            return socket

        async def start() -> None:
            app = web.Application()
            app.router.add_get("/link", link)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def push(self, envelope: dict[str, Any], timeout: float = 10.0) -> None:
        """Send an envelope to the connected client (waits for a connection)."""
        import asyncio

        deadline = time.monotonic() + timeout
        while not self._sockets and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self._sockets, "no Socket Mode client connected"
        asyncio.run_coroutine_threadsafe(self._sockets[-1].send_json(envelope), self._loop).result(timeout)

    def __enter__(self) -> FakeSocketMode:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
