"""A loopback fake of Discord (REST API + gateway WebSocket) that the real discord.py client talks to.

Built from ../shared/reference/platforms-and-reliability.md §2.6 and discord.py 2.7's source. Point the
library at it with `FakeDiscord.patch()` (sets `discord.http.Route.BASE` and
`DiscordWebSocket.DEFAULT_GATEWAY`, restores them afterwards), then start a normal `discord.Client`.

One aiohttp server in its own thread and event loop serves both halves:

* REST under `/api/v10`: login (`/users/@me`, `/oauth2/applications/@me`), `/gateway[/bot]`, command
  bulk-overwrite (global and guild), interaction callbacks (`?with_response=1` → `InteractionCallback`
  JSON, otherwise 204), followups and `@original` edits on `/webhooks/{app}/{token}`, channel messages (JSON
  or multipart `payload_json` + `files[n]`), typing, reactions, DMs, a few guild reads. Anything else: 404.
* Gateway at `/gateway`: HELLO → IDENTIFY → READY (+ GUILD_CREATE for one guild with channel 444 and roles
  @everyone / 555 "viewers"), heartbeat ACKs, RESUME → RESUMED, `dispatch()` for any event.

Every REST call is recorded (`requests`); `rate_limit_next` / `fail_next` script misbehaviour. Responses use
`Content-Type: application/json` exactly (discord.py compares the header with `==`), and 429s carry `Via`
and a JSON `retry_after`, without which discord.py raises instead of retrying.

Keep discord.py's `guild_ready_timeout` small in tests (`discord.Client(..., guild_ready_timeout=0.1)`):
`on_ready` / `wait_until_ready()` otherwise waits 2 s after the last GUILD_CREATE.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import math
import mimetypes
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web

DISCORD_EPOCH_MS = 1420070400000
JSON_TYPE = "application/json"

# View Channel, Send Messages, Embed Links, Attach Files, Read Message History, Add Reactions,
# Use External Emojis, Use Application Commands: what @everyone gets, and the bot's app_permissions.
DEFAULT_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 6) | (1 << 18) | (1 << 31)
EPHEMERAL = 1 << 6  # message flag 64
LOADING = 1 << 7  # message flag 128: a deferred "thinking" response


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _ok(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response whose Content-Type is exactly `application/json` (no charset)."""
    all_headers = {"Content-Type": JSON_TYPE}
    all_headers.update(headers or {})
    return web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)


def _error(status: int, message: str, code: int = 0) -> web.Response:
    return _ok({"message": message, "code": code}, status)


def _no_content() -> web.Response:
    return web.Response(status=204)


@dataclass
class RecordedFile:
    """One file part of a multipart request (`files[n]`)."""

    field: str
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class Recorded:
    """One REST request the fake received (path is relative to `/api/v10`)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any  # the JSON body, or the parsed `payload_json` part of a multipart body; None if neither
    files: list[RecordedFile]
    headers: dict[str, str]
    status: int = 0  # what the fake answered
    at: float = 0.0  # time.monotonic()


@dataclass
class _Rule:
    method: str
    path_glob: str
    count: int
    respond: Callable[[], web.Response]

    def matches(self, method: str, path: str) -> bool:
        return _method_matches(self.method, method) and fnmatch.fnmatchcase(path, self.path_glob)


def _method_matches(wanted: str, method: str) -> bool:
    return wanted == "*" or wanted.upper() == method.upper()


@dataclass
class _Session:
    socket: web.WebSocketResponse
    path: str
    received: list[dict[str, Any]] = field(default_factory=list)


Handler = Callable[[re.Match[str], Recorded], Awaitable[web.Response] | web.Response]


class FakeDiscord:
    """Runs the fake on 127.0.0.1 (free port) in a background thread with its own event loop."""

    application_id: int = 111
    bot_user_id: int = 222
    guild_id: int = 333
    channel_id: int = 444
    viewer_role_id: int = 555
    user_id: int = 777  # the default human in the interaction builders
    owner_id: int = 999  # the guild owner (deliberately not `user_id`: owners get every permission)

    def __init__(
        self,
        *,
        token: str | None = None,
        with_guild: bool = True,
        everyone_permissions: int = DEFAULT_PERMISSIONS,
        heartbeat_interval: int = 41250,
    ) -> None:
        """`token`: if set, REST calls and IDENTIFY must use it (401 / close 4004 otherwise).

        `with_guild`: READY lists the guild and a GUILD_CREATE follows; False sends `guilds: []`.
        """
        self.token = token
        self.with_guild = with_guild
        self.everyone_permissions = everyone_permissions
        self.heartbeat_interval = heartbeat_interval
        self.port = 0

        self.requests: list[Recorded] = []
        self.identified = threading.Event()
        self.ready_sent = threading.Event()
        self.identify_payloads: list[dict[str, Any]] = []
        self.resumes = 0
        self.gateway_received: list[dict[str, Any]] = []  # every frame the client sent (all connections)
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.commands: list[dict[str, Any]] = []  # whatever was synced last (global or guild)
        self.messages: dict[int, dict[str, Any]] = {}  # every message the bot created, by id (kept up to date)
        self.channels: dict[int, dict[str, Any]] = {}
        self.interactions: dict[int, dict[str, Any]] = {}  # sent through send_interaction / dispatch
        self.acknowledged: dict[int, int] = {}  # interaction id -> callback type

        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self.gateway_refusals = 0  # answer this many gateway connections with 503 instead of a WebSocket
        self.gateway_attempts = 0  # connections to the gateway, refused or not
        self._originals: dict[str, int] = {}  # interaction token -> original response message id
        self._tokens: dict[str, int] = {}  # interaction token -> interaction id
        self._attachments: dict[int, bytes] = {}
        self._command_ids: dict[tuple[str, int, int | None], int] = {}
        self._last_id = 0
        self._sessions: list[_Session] = []
        self._active: _Session | None = None
        self._session_id: str | None = None
        self._seq = 0

        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-discord", daemon=True)
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = self._build_routes()
        self.add_channel(self.channel_id, "general")

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeDiscord:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("fake Discord did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._started.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{channel}/{id}/{name}", self._attachment)
        app.router.add_route("*", "/api/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _shutdown(self) -> None:
        for session in list(self._sessions):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.socket.close(code=1001, message=b"fake shutting down"), 2)
        if self._runner is not None:
            await self._runner.cleanup()

    @contextlib.contextmanager
    def patch(self) -> Iterator[FakeDiscord]:
        """Point discord.py at this fake (Route.BASE, DEFAULT_GATEWAY); restore the old values on exit."""
        import discord.gateway
        import discord.http
        import yarl

        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.rest_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield self
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        """What `discord.http.Route.BASE` should be."""
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What `DiscordWebSocket.DEFAULT_GATEWAY` should be (wrap it in `yarl.URL`)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------------ test-side API

    def recorded(self, method: str = "*", path_glob: str = "*") -> list[Recorded]:
        """Requests so far matching `method` ("*" for any) and an fnmatch glob on the path."""
        with self._lock:
            return [
                r
                for r in self.requests
                if _method_matches(method, r.method) and fnmatch.fnmatchcase(r.path, path_glob)
            ]

    def wait_for(self, method: str, path_glob: str, count: int = 1, timeout: float = 10.0) -> list[Recorded]:
        """Block until `count` matching requests arrived; return all matching ones.

        For code running the client on another thread. In an async test, where the client shares the test's
        event loop, blocking would starve it: use `await fake.wait_for_async(...)` instead.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("FakeDiscord.wait_for would block the event loop; use `await wait_for_async(...)`")
        deadline = time.monotonic() + timeout
        while True:
            found = self.recorded(method, path_glob)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(self._timeout_message(method, path_glob, count, found))
            time.sleep(0.01)

    async def wait_for_async(
        self,
        method: str,
        path_glob: str,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 - same signature as wait_for
    ) -> list[Recorded]:
        """`wait_for` for async tests: yields to the event loop while waiting."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.recorded(method, path_glob)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(self._timeout_message(method, path_glob, count, found))
            await asyncio.sleep(0.01)

    def _timeout_message(self, method: str, path_glob: str, count: int, found: list[Recorded]) -> str:
        seen = "\n".join(f"  {r.method} {r.path} -> {r.status}" for r in self.recorded())
        return f"{method} {path_glob}: {len(found)} of {count} requests arrived. All requests:\n{seen}"

    def rate_limit_next(
        self, method: str, path_glob: str, retry_after: float = 0.5, count: int = 1, *, is_global: bool = False
    ) -> None:
        """Answer the next `count` matching REST calls with a 429 discord.py retries after `retry_after`."""

        def respond() -> web.Response:
            reset = time.time() + retry_after
            headers = {
                "Via": "1.1 google",
                "Retry-After": str(math.ceil(retry_after)),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{reset:.3f}",
                "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                "X-RateLimit-Bucket": "fakebucket0000000000000000000000",
                "X-RateLimit-Scope": "global" if is_global else "user",
            }
            if is_global:
                headers["X-RateLimit-Global"] = "true"
            body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
            return _ok(body, 429, headers)

        with self._lock:
            self._rules.append(_Rule(method, path_glob, count, respond))

    def fail_next(
        self, method: str, path_glob: str, status: int = 500, count: int = 1, *, body: Any = None
    ) -> None:
        """Answer the next `count` matching REST calls with `status` (body: JSON, default {"message","code"}).

        discord.py retries 500/502/504/524 itself after 1, 3, 5, 7 s; other statuses raise.
        """
        payload = body if body is not None else {"message": f"{status}: fake failure", "code": 0}
        with self._lock:
            self._rules.append(_Rule(method, path_glob, count, lambda: _ok(payload, status)))

    def add_channel(self, channel_id: int, name: str, *, position: int | None = None) -> dict[str, Any]:
        """Make a guild text channel known to REST (GUILD_CREATE only includes channels added before READY)."""
        channel = {
            "id": str(channel_id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": name,
            "position": len(self.channels) if position is None else position,
            "permission_overwrites": [],
            "parent_id": None,
            "nsfw": False,
            "topic": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }
        self.channels[channel_id] = channel
        return channel

    def dispatch(self, event_type: str, data: dict[str, Any], timeout: float = 5.0) -> None:
        """Send an op 0 dispatch on the identified gateway connection (thread-safe; seq increases)."""
        if self._active is None:
            raise RuntimeError("no identified gateway connection: wait for the client to be ready first")
        if event_type == "INTERACTION_CREATE":
            self._remember_interaction(data)
        asyncio.run_coroutine_threadsafe(self._send_dispatch(event_type, data), self._loop).result(timeout)

    def send_interaction(self, data: dict[str, Any]) -> dict[str, Any]:
        """Dispatch INTERACTION_CREATE (see `command_interaction` and friends); returns `data`."""
        self.dispatch("INTERACTION_CREATE", data)
        return data

    def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py closes the socket and RESUMEs on `resume_gateway_url`."""
        self._send_op(7, None)

    def invalidate_session(self, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION (non-resumable: discord.py re-IDENTIFYs after a 5 s pause)."""
        self._send_op(9, resumable)

    def _send_op(self, op: int, data: Any) -> None:
        session = self._active
        if session is None:
            raise RuntimeError("no identified gateway connection")
        asyncio.run_coroutine_threadsafe(
            session.socket.send_str(json.dumps({"op": op, "d": data})), self._loop
        ).result(5)

    # ------------------------------------------------------------------ objects

    def snowflake(self) -> int:
        """A fresh, increasing snowflake whose timestamp is now."""
        with self._lock:
            candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
            self._last_id = max(candidate, self._last_id + 1)
            return self._last_id

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": str(self.bot_user_id),
            "username": "creditbot",
            "discriminator": "0000",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "system": False,
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "public_flags": 0,
            "locale": "en-US",
            "email": None,
        }

    def user(self, user_id: int, username: str | None = None) -> dict[str, Any]:
        if user_id == self.bot_user_id:
            return self.bot_user
        return {
            "id": str(user_id),
            "username": username or f"user{user_id}",
            "discriminator": "0",
            "global_name": username or f"User {user_id}",
            "avatar": None,
            "public_flags": 0,
        }

    @property
    def application(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": "creditbot",
            "description": "fake application",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.user(self.owner_id, "owner"),
            "team": None,
            "verify_key": "0" * 64,
            "flags": 0,
            "summary": "",
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": 1,
            "bot": self.bot_user,
            "integration_types_config": {"0": {}},
        }

    def roles(self) -> list[dict[str, Any]]:
        def role(role_id: int, name: str, permissions: int, position: int) -> dict[str, Any]:
            return {
                "id": str(role_id),
                "name": name,
                "permissions": str(permissions),
                "position": position,
                "color": 0,
                "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "icon": None,
                "unicode_emoji": None,
                "flags": 0,
            }

        return [
            role(self.guild_id, "@everyone", self.everyone_permissions, 0),
            role(self.viewer_role_id, "viewers", 0, 1),
        ]

    def member(
        self, user_id: int, *, roles: Sequence[str | int] = (), permissions: str | None = None
    ) -> dict[str, Any]:
        member: dict[str, Any] = {
            "user": self.user(user_id),
            "roles": [str(r) for r in roles],
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "communication_disabled_until": None,
        }
        if permissions is not None:
            member["permissions"] = permissions
        return member

    def guild(self) -> dict[str, Any]:
        return {
            "id": str(self.guild_id),
            "name": "Fake Guild",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": self.roles(),
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "max_members": 500000,
        }

    def guild_create(self) -> dict[str, Any]:
        """The GUILD_CREATE payload sent after READY."""
        return {
            **self.guild(),
            "unavailable": False,
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "large": False,
            "member_count": 2,
            "members": [self.member(self.bot_user_id)],
            "channels": [{k: v for k, v in c.items() if k != "guild_id"} for c in self.channels.values()],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        self.gateway_attempts += 1
        if self.gateway_refusals > 0:  # the gateway is down: the WebSocket handshake fails
            self.gateway_refusals -= 1
            return web.Response(status=503, text="gateway unavailable")
        socket = web.WebSocketResponse(timeout=2.0, max_msg_size=0)
        await socket.prepare(request)
        session = _Session(socket, request.path_qs)
        self._sessions.append(session)
        try:
            await self._send(session, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval}, "s": None})
            async for message in socket:
                if message.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(message.data)
                session.received.append(payload)
                self.gateway_received.append(payload)
                await self._on_frame(session, payload)
        finally:
            self._sessions.remove(session)
            if self._active is session:
                self._active = None
        return socket

    async def _send(self, session: _Session, payload: dict[str, Any]) -> None:
        payload.setdefault("t", None)
        await session.socket.send_str(json.dumps(payload))

    async def _send_dispatch(self, event_type: str, data: Any, session: _Session | None = None) -> None:
        target = session or self._active
        if target is None:
            raise RuntimeError("no identified gateway connection")
        self._seq += 1
        await self._send(target, {"op": 0, "t": event_type, "s": self._seq, "d": data})

    async def _on_frame(self, session: _Session, payload: dict[str, Any]) -> None:
        op = payload.get("op")
        data: Any = payload.get("d") or {}
        if op == 1:  # heartbeat
            await self._send(session, {"op": 11, "d": None, "s": None})
        elif op == 2:  # identify
            if self.token is not None and data.get("token") != self.token:
                await session.socket.close(code=4004, message=b"Authentication failed.")
                return
            self.identify_payloads.append(data)
            self.identified.set()
            self._session_id = f"fake-session-{len(self.identify_payloads)}"
            self._seq = 0
            self._active = session
            await self._send_dispatch("READY", self._ready_payload(data), session)
            if self.with_guild:
                await self._send_dispatch("GUILD_CREATE", self.guild_create(), session)
            self.ready_sent.set()
        elif op == 6:  # resume
            if data.get("session_id") != self._session_id or self._session_id is None:
                await self._send(session, {"op": 9, "d": False, "s": None})
                return
            self.resumes += 1
            self._active = session
            await self._send_dispatch("RESUMED", {}, session)  # discord.py writes into `d`: must be a dict
        elif op == 8:  # request guild members
            chunk = {
                "guild_id": str(data.get("guild_id")),
                "members": [self.member(self.bot_user_id)],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
            }
            if data.get("nonce"):
                chunk["nonce"] = data["nonce"]
            await self._send_dispatch("GUILD_MEMBERS_CHUNK", chunk, session)

    def _ready_payload(self, identify: dict[str, Any]) -> dict[str, Any]:
        return {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": str(self.guild_id), "unavailable": True}] if self.with_guild else [],
            "session_id": self._session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "shard": identify.get("shard", [0, 1]),
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "user_settings": {},
            "auth": {},
            "_trace": ["fake-discord"],
        }

    def _remember_interaction(self, data: dict[str, Any]) -> None:
        interaction_id = int(data["id"])
        self.interactions[interaction_id] = data
        self._tokens[data["token"]] = interaction_id
        message = data.get("message")
        if message is not None and int(message["id"]) not in self.messages:
            self.messages[int(message["id"])] = message

    # ------------------------------------------------------------------ REST

    async def _attachment(self, request: web.Request) -> web.Response:
        data = self._attachments.get(int(request.match_info["id"]))
        if data is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=data, headers={"Content-Type": "application/octet-stream"})

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        match = re.fullmatch(r"/api/v\d+(/.*)", request.path)
        path = match.group(1) if match else request.path
        body, files = await self._read_body(request)
        recorded = Recorded(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            files=files,
            headers=dict(request.headers),
            at=time.monotonic(),
        )
        response = self._scripted(recorded) or await self._route(recorded)
        recorded.status = response.status
        with self._lock:
            self.requests.append(recorded)
        return response

    async def _read_body(self, request: web.Request) -> tuple[Any, list[RecordedFile]]:
        files: list[RecordedFile] = []
        if not request.can_read_body:
            return None, files
        if request.content_type == "multipart/form-data":
            body = None
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                raw = await part.read(decode=False)
                if part.name == "payload_json":
                    body = json.loads(raw)
                else:
                    files.append(
                        RecordedFile(
                            field=part.name or "",
                            filename=part.filename or "",
                            content_type=part.headers.get("Content-Type", ""),
                            data=bytes(raw),
                        )
                    )
            return body, files
        raw = await request.read()
        if not raw:
            return None, files
        try:
            return json.loads(raw), files
        except ValueError:
            return raw.decode(errors="replace"), files

    def _scripted(self, recorded: Recorded) -> web.Response | None:
        with self._lock:
            for rule in self._rules:
                if rule.count > 0 and rule.matches(recorded.method, recorded.path):
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                    return rule.respond()
        return None

    async def _route(self, recorded: Recorded) -> web.Response:
        open_paths = ("/webhooks/", "/interactions/")  # discord.py sends no Authorization there
        needs_token = self.token is not None and not recorded.path.startswith(open_paths)
        if needs_token and recorded.headers.get("Authorization") != f"Bot {self.token}":
            return _error(401, "401: Unauthorized")
        for method, pattern, handler in self._routes:
            if method != recorded.method:
                continue
            match = pattern.fullmatch(recorded.path)
            if match:
                result = handler(match, recorded)
                if not isinstance(result, web.Response):
                    result = await result
                return result
        return _error(404, "Unknown")

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        table: list[tuple[str, str, Handler]] = [
            ("GET", r"/users/@me", lambda m, r: _ok(self.bot_user)),
            ("GET", r"/users/(\d+)", lambda m, r: _ok(self.user(int(m[1])))),
            ("POST", r"/users/@me/channels", self._open_dm),
            ("GET", r"/oauth2/applications/@me", lambda m, r: _ok(self.application)),
            ("GET", r"/applications/@me", lambda m, r: _ok(self.application)),
            ("GET", r"/gateway", lambda m, r: _ok({"url": self.gateway_url})),
            ("GET", r"/gateway/bot", lambda m, r: _ok(self._gateway_bot())),
            ("PUT", r"/applications/(\d+)/commands", self._put_commands),
            ("GET", r"/applications/(\d+)/commands", self._get_commands),
            ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._put_commands),
            ("GET", r"/applications/(\d+)/guilds/(\d+)/commands", self._get_commands),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
            ("POST", r"/webhooks/(\d+)/([^/]+)", self._followup),
            ("GET", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._webhook_message),
            ("PATCH", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._webhook_message),
            ("DELETE", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._webhook_message),
            ("GET", r"/channels/(\d+)", self._get_channel),
            ("GET", r"/channels/(\d+)/messages", self._history),
            ("POST", r"/channels/(\d+)/messages", self._post_message),
            ("GET", r"/channels/(\d+)/messages/(\d+)", self._channel_message),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._channel_message),
            ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._channel_message),
            ("POST", r"/channels/(\d+)/typing", self._typing),
            ("PUT", r"/channels/(\d+)/messages/(\d+)/reactions/([^/]+)/@me", self._reaction),
            ("DELETE", r"/channels/(\d+)/messages/(\d+)/reactions/([^/]+)/@me", self._reaction),
            ("GET", r"/guilds/(\d+)", self._get_guild),
            ("GET", r"/guilds/(\d+)/channels", self._guild_channels),
            ("GET", r"/guilds/(\d+)/roles", self._guild_roles),
            ("GET", r"/guilds/(\d+)/members/(\d+)", self._guild_member),
        ]
        return [(method, re.compile(pattern), handler) for method, pattern, handler in table]

    def _gateway_bot(self) -> dict[str, Any]:
        return {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 86400000,
                "max_concurrency": 1,
            },
        }

    # commands

    def _put_commands(self, m: re.Match[str], r: Recorded) -> web.Response:
        if int(m[1]) != self.application_id:
            return _error(404, "Unknown Application", 10002)
        guild_id = int(m[2]) if m.lastindex and m.lastindex >= 2 else None
        if guild_id is not None and guild_id != self.guild_id:
            return _error(403, "Missing Access", 50001)
        stored = [self._command(c, guild_id) for c in (r.json or [])]
        if guild_id is None:
            self.global_commands = stored
        else:
            self.guild_commands[guild_id] = stored
        self.commands = stored
        return _ok(stored)

    def _command(self, command: dict[str, Any], guild_id: int | None) -> dict[str, Any]:
        kind = int(command.get("type", 1))
        key = (command["name"], kind, guild_id)
        if key not in self._command_ids:
            self._command_ids[key] = self.snowflake()
        stored = {
            "type": kind,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
            **command,
            "id": str(self._command_ids[key]),
            "application_id": str(self.application_id),
            "version": str(self.snowflake()),
        }
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
        return stored

    def _get_commands(self, m: re.Match[str], r: Recorded) -> web.Response:
        if int(m[1]) != self.application_id:
            return _error(404, "Unknown Application", 10002)
        if m.lastindex and m.lastindex >= 2:
            return _ok(self.guild_commands.get(int(m[2]), []))
        return _ok(self.global_commands)

    # interactions and webhooks

    def _callback(self, m: re.Match[str], r: Recorded) -> web.Response:
        interaction_id, token = int(m[1]), m[2]
        body = r.json or {}
        callback_type = int(body.get("type", 0))
        data = body.get("data") or {}
        if interaction_id in self.acknowledged:
            return _error(400, "Interaction has already been acknowledged.", 40060)
        self.acknowledged[interaction_id] = callback_type
        interaction = self.interactions.get(interaction_id, {})
        channel_id = int(interaction.get("channel_id") or self.channel_id)
        flags = int(data.get("flags") or 0)
        summary: dict[str, Any] = {
            "id": str(interaction_id),
            "type": int(interaction.get("type", 2)),
            "response_message_loading": callback_type == 5,
            "response_message_ephemeral": bool(flags & EPHEMERAL),
        }
        resource: dict[str, Any] = {"type": callback_type}
        if callback_type == 4:  # CHANNEL_MESSAGE_WITH_SOURCE
            message = self._create_message(channel_id, data, r.files, interaction=interaction)
            self._originals[token] = int(message["id"])
            resource["message"] = message
            summary["response_message_id"] = message["id"]
        elif callback_type == 5:  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: a "thinking…" placeholder
            message = self._create_message(channel_id, {"flags": flags | LOADING}, [], interaction=interaction)
            self._originals[token] = int(message["id"])
            summary["response_message_id"] = message["id"]
        elif callback_type in (6, 7) and interaction.get("message"):  # (DEFERRED_)UPDATE_MESSAGE
            message_id = int(interaction["message"]["id"])
            self._originals[token] = message_id
            if callback_type == 7:
                target = self.messages.setdefault(message_id, interaction["message"])
                message = self._edit_message(target, data, r.files)
                resource["message"] = message
                summary["response_message_id"] = message["id"]
        if "with_response" not in r.query:
            return _no_content()
        return _ok({"interaction": summary, "resource": resource})

    def _webhook_owner(self, m: re.Match[str]) -> tuple[int | None, web.Response | None]:
        """The interaction id behind a webhook token, or an error answer like Discord's."""
        if int(m[1]) != self.application_id:
            return None, _error(404, "Unknown Webhook", 10015)
        interaction_id = self._tokens.get(m[2])
        if interaction_id is not None and interaction_id not in self.acknowledged:
            return interaction_id, _error(404, "Unknown Webhook", 10015)  # followup before the callback
        return interaction_id, None

    def _followup(self, m: re.Match[str], r: Recorded) -> web.Response:
        interaction_id, failure = self._webhook_owner(m)
        if failure is not None:
            return failure
        interaction = self.interactions.get(interaction_id or 0, {})
        channel_id = int(interaction.get("channel_id") or self.channel_id)
        message = self._create_message(channel_id, r.json or {}, r.files, interaction=interaction)
        original = self.messages.get(self._originals.get(m[2], 0))
        if original is not None and original["flags"] & LOADING:
            # The first followup after a thinking defer becomes the deferred message itself, as on Discord.
            del self.messages[int(message["id"])]
            message["id"] = original["id"]
            message["flags"] = (message["flags"] | (original["flags"] & EPHEMERAL)) & ~LOADING
            self.messages[int(original["id"])] = message
        if r.query.get("wait") in ("1", "true", "True"):
            return _ok(message)
        return _no_content()

    def _webhook_message(self, m: re.Match[str], r: Recorded) -> web.Response:
        _, failure = self._webhook_owner(m)
        if failure is not None:
            return failure
        message_id = self._originals.get(m[2]) if m[3] == "@original" else int(m[3])
        message = self.messages.get(message_id or 0)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        if r.method == "GET":
            return _ok(message)
        if r.method == "DELETE":
            del self.messages[int(message["id"])]
            return _no_content()
        return _ok(self._edit_message(message, r.json or {}, r.files))

    # channels and messages

    def _channel_or_404(self, channel_id: int) -> tuple[dict[str, Any] | None, web.Response | None]:
        channel = self.channels.get(channel_id)
        if channel is None:
            return None, _error(404, "Unknown Channel", 10003)
        return channel, None

    def _get_channel(self, m: re.Match[str], r: Recorded) -> web.Response:
        channel, failure = self._channel_or_404(int(m[1]))
        return failure or _ok(channel)

    def _history(self, m: re.Match[str], r: Recorded) -> web.Response:
        _, failure = self._channel_or_404(int(m[1]))
        if failure:
            return failure
        limit = int(r.query.get("limit", 50))
        found = [msg for msg in self.messages.values() if msg["channel_id"] == m[1]]
        return _ok(sorted(found, key=lambda msg: int(msg["id"]), reverse=True)[:limit])

    def _post_message(self, m: re.Match[str], r: Recorded) -> web.Response:
        channel, failure = self._channel_or_404(int(m[1]))
        if failure or channel is None:
            return failure or _error(404, "Unknown Channel", 10003)
        body = r.json or {}
        if not (body.get("content") or body.get("embeds") or r.files or body.get("components")):
            return _error(400, "Cannot send an empty message", 50006)
        message = self._create_message(int(m[1]), body, r.files)
        channel["last_message_id"] = message["id"]
        return _ok(message)

    def _channel_message(self, m: re.Match[str], r: Recorded) -> web.Response:
        message = self.messages.get(int(m[2]))
        if message is None or message["channel_id"] != m[1]:
            return _error(404, "Unknown Message", 10008)
        if r.method == "GET":
            return _ok(message)
        if r.method == "DELETE":
            del self.messages[int(m[2])]
            return _no_content()
        return _ok(self._edit_message(message, r.json or {}, r.files))

    def _typing(self, m: re.Match[str], r: Recorded) -> web.Response:
        _, failure = self._channel_or_404(int(m[1]))
        return failure or _no_content()

    def _reaction(self, m: re.Match[str], r: Recorded) -> web.Response:
        if int(m[2]) not in self.messages:
            return _error(404, "Unknown Message", 10008)
        return _no_content()

    def _open_dm(self, m: re.Match[str], r: Recorded) -> web.Response:
        recipient = int((r.json or {}).get("recipient_id", 0))
        channel_id = self.snowflake()
        channel = {
            "id": str(channel_id),
            "type": 1,
            "last_message_id": None,
            "flags": 0,
            "recipients": [self.user(recipient)],
        }
        self.channels[channel_id] = channel
        return _ok(channel)

    def _get_guild(self, m: re.Match[str], r: Recorded) -> web.Response:
        if int(m[1]) != self.guild_id:
            return _error(404, "Unknown Guild", 10004)
        return _ok(self.guild())

    def _guild_channels(self, m: re.Match[str], r: Recorded) -> web.Response:
        if int(m[1]) != self.guild_id:
            return _error(404, "Unknown Guild", 10004)
        return _ok([c for c in self.channels.values() if c.get("guild_id") == str(self.guild_id)])

    def _guild_roles(self, m: re.Match[str], r: Recorded) -> web.Response:
        if int(m[1]) != self.guild_id:
            return _error(404, "Unknown Guild", 10004)
        return _ok(self.roles())

    def _guild_member(self, m: re.Match[str], r: Recorded) -> web.Response:
        if int(m[1]) != self.guild_id:
            return _error(404, "Unknown Guild", 10004)
        return _ok(self.member(int(m[2])))

    def _attachments_for(
        self, channel_id: int, payload: dict[str, Any], files: list[RecordedFile]
    ) -> list[dict[str, Any]]:
        described = {str(a.get("id")): a for a in payload.get("attachments") or [] if isinstance(a, dict)}
        result = []
        for index, file in enumerate(files):
            attachment_id = self.snowflake()
            self._attachments[attachment_id] = file.data
            meta = described.get(str(index), {})
            filename = meta.get("filename") or file.filename
            url = f"{self.url}/attachments/{channel_id}/{attachment_id}/{filename}"
            result.append(
                {
                    "id": str(attachment_id),
                    "filename": filename,
                    "description": meta.get("description"),
                    "content_type": mimetypes.guess_type(filename)[0] or "application/octet-stream",
                    "size": file.size,
                    "url": url,
                    "proxy_url": url,
                    "flags": 0,
                }
            )
        return result

    def _create_message(
        self,
        channel_id: int,
        payload: dict[str, Any],
        files: list[RecordedFile],
        *,
        interaction: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        message_id = self.snowflake()
        message: dict[str, Any] = {
            "id": str(message_id),
            "type": 0,
            "channel_id": str(channel_id),
            "author": self.bot_user,
            "content": payload.get("content") or "",
            "embeds": [{"type": "rich", **e} for e in payload.get("embeds") or []],
            "attachments": self._attachments_for(channel_id, payload, files),
            "components": payload.get("components") or [],
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": bool(payload.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "flags": int(payload.get("flags") or 0),
        }
        if interaction is not None:
            message["type"] = 20 if interaction.get("type") == 2 else 0  # CHAT_INPUT_COMMAND / DEFAULT
            message["webhook_id"] = str(self.application_id)
            message["application_id"] = str(self.application_id)
            if interaction.get("id"):
                who = (interaction.get("member") or {}).get("user") or interaction.get("user")
                message["interaction_metadata"] = {
                    "id": str(interaction["id"]),
                    "type": int(interaction.get("type", 2)),
                    "user": who or self.user(self.user_id),
                    "authorizing_integration_owners": interaction.get("authorizing_integration_owners", {}),
                }
        self.messages[message_id] = message
        return message

    def _edit_message(
        self, message: dict[str, Any], payload: dict[str, Any], files: list[RecordedFile]
    ) -> dict[str, Any]:
        if "content" in payload:
            message["content"] = payload["content"] or ""
        if "embeds" in payload:
            message["embeds"] = [{"type": "rich", **e} for e in payload["embeds"] or []]
        if "components" in payload:
            message["components"] = payload["components"] or []
        if "flags" in payload and payload["flags"] is not None:
            message["flags"] = int(payload["flags"]) | (message["flags"] & EPHEMERAL)
        if "attachments" in payload or files:
            keep = {str(a.get("id")) for a in payload.get("attachments") or [] if isinstance(a, dict)}
            kept = [a for a in message["attachments"] if a["id"] in keep]
            message["attachments"] = kept + self._attachments_for(int(message["channel_id"]), payload, files)
        message["flags"] &= ~LOADING
        message["edited_timestamp"] = _now_iso()
        return message


# ---------------------------------------------------------------------- interaction payloads


def _options(options: Sequence[dict[str, Any]] | Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Option dicts as given, or built from {name: value} (str → 3, int → 4, bool → 5, float → 10)."""
    if options is None:
        return []
    if isinstance(options, Mapping):
        built = []
        for name, value in options.items():
            if isinstance(value, bool):
                kind = 5
            elif isinstance(value, int):
                kind = 4
            elif isinstance(value, float):
                kind = 10
            else:
                kind, value = 3, str(value)
            built.append({"name": name, "type": kind, "value": value})
        return built
    return [dict(o) for o in options]


def _interaction(
    fake: FakeDiscord,
    kind: int,
    data: dict[str, Any],
    *,
    user_id: int | None,
    permissions: str,
    roles: Sequence[str | int],
    interaction_id: int | None,
    channel_id: int | None,
    in_guild: bool,
    locale: str,
    message: dict[str, Any] | None = None,
    app_permissions: str | None = None,
) -> dict[str, Any]:
    iid = interaction_id if interaction_id is not None else fake.snowflake()
    uid = user_id if user_id is not None else fake.user_id
    channel_id = channel_id if channel_id is not None else fake.channel_id
    payload: dict[str, Any] = {
        "id": str(iid),
        "application_id": str(fake.application_id),
        "type": kind,
        "data": data,
        "channel_id": str(channel_id),
        "token": f"fake-interaction-token-{iid}",
        "version": 1,
        "locale": locale,
        "app_permissions": app_permissions or str(DEFAULT_PERMISSIONS),
        "entitlements": [],
        "attachment_size_limit": 10 * 1024 * 1024,  # discord.py reads this key unconditionally
    }
    if in_guild:
        channel = fake.channels.get(channel_id) or fake.add_channel(channel_id, f"channel-{channel_id}")
        payload.update(
            guild_id=str(fake.guild_id),
            guild={"id": str(fake.guild_id), "locale": "en-US", "features": []},
            guild_locale="en-US",
            channel=channel,
            member=fake.member(uid, roles=roles, permissions=permissions),
            authorizing_integration_owners={"0": str(fake.guild_id)},
            context=0,
        )
    else:
        payload.update(
            channel={"id": str(channel_id), "type": 1, "flags": 0, "recipients": [fake.user(uid)]},
            user=fake.user(uid),
            authorizing_integration_owners={"0": str(fake.guild_id)},
            context=1,
        )
    if message is not None:
        payload["message"] = message
    return payload


def _command_data(
    fake: FakeDiscord, name: str, options: list[dict[str, Any]], command_type: int = 1
) -> dict[str, Any]:
    words = name.split()
    top = words[0]
    if len(words) == 3:
        options = [{"type": 2, "name": words[1], "options": [{"type": 1, "name": words[2], "options": options}]}]
    elif len(words) == 2:
        options = [{"type": 1, "name": words[1], "options": options}]
    data: dict[str, Any] = {"name": top, "type": command_type, "options": options}
    for command in [*fake.guild_commands.get(fake.guild_id, []), *fake.global_commands]:
        if command["name"] == top and int(command.get("type", 1)) == command_type:
            data["id"] = command["id"]
            if "guild_id" in command:
                data["guild_id"] = command["guild_id"]
            break
    else:
        data["id"] = str(fake.snowflake())
    return data


def command_interaction(
    fake: FakeDiscord,
    name: str,
    options: Sequence[dict[str, Any]] | Mapping[str, Any] | None = None,
    *,
    user_id: int | None = None,
    permissions: str = "0",
    roles: Sequence[str | int] = (),
    interaction_id: int | None = None,
    channel_id: int | None = None,
    in_guild: bool = True,
    locale: str = "en-US",
    resolved: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An INTERACTION_CREATE payload for a slash command (type 2).

    `name` may name a subcommand: "creditbot snooze" (or "group sub cmd"). `options` is a list of option
    dicts or a {name: value} mapping. `permissions` is the member's resolved permission bitset as a string.
    The command id (and `guild_id` for guild commands) comes from what the client synced, if it did.
    """
    data = _command_data(fake, name, _options(options))
    if resolved is not None:
        data["resolved"] = resolved
    return _interaction(
        fake,
        2,
        data,
        user_id=user_id,
        permissions=permissions,
        roles=roles,
        interaction_id=interaction_id,
        channel_id=channel_id,
        in_guild=in_guild,
        locale=locale,
    )


def autocomplete_interaction(
    fake: FakeDiscord,
    name: str,
    options: Sequence[dict[str, Any]] | Mapping[str, Any] | None,
    *,
    focused: str,
    user_id: int | None = None,
    permissions: str = "0",
    roles: Sequence[str | int] = (),
    interaction_id: int | None = None,
    channel_id: int | None = None,
    in_guild: bool = True,
    locale: str = "en-US",
) -> dict[str, Any]:
    """An APPLICATION_COMMAND_AUTOCOMPLETE payload (type 4); the option named `focused` gets `focused: true`.

    Discord sends the partial text typed so far as a string value for the focused option.
    """
    built = _options(options)
    for option in built:
        if option["name"] == focused:
            option["focused"] = True
            option["value"] = str(option.get("value", ""))
            option["type"] = option.get("type", 3)
            break
    else:
        built.append({"name": focused, "type": 3, "value": "", "focused": True})
    data = _command_data(fake, name, built)
    return _interaction(
        fake,
        4,
        data,
        user_id=user_id,
        permissions=permissions,
        roles=roles,
        interaction_id=interaction_id,
        channel_id=channel_id,
        in_guild=in_guild,
        locale=locale,
    )


def component_interaction(
    fake: FakeDiscord,
    custom_id: str,
    *,
    message_id: int | None = None,
    message: dict[str, Any] | None = None,
    component_type: int = 2,
    values: Sequence[str] | None = None,
    user_id: int | None = None,
    permissions: str = "0",
    roles: Sequence[str | int] = (),
    interaction_id: int | None = None,
    channel_id: int | None = None,
    in_guild: bool = True,
    locale: str = "en-US",
) -> dict[str, Any]:
    """A MESSAGE_COMPONENT payload (type 3): a button press (or a select with `values`, component_type 3).

    The message is `message`, else the bot message `message_id` the fake stored, else a fresh bot message
    in the channel carrying one button with this custom_id.
    """
    if message is None and message_id is not None:
        message = fake.messages.get(message_id)
        if message is None:
            raise KeyError(f"the fake has no message {message_id}")
    if message is None:
        target = channel_id if channel_id is not None else fake.channel_id
        button = {"type": 2, "style": 2, "label": "Button", "custom_id": custom_id}
        message = fake._create_message(
            target, {"content": "", "components": [{"type": 1, "components": [button]}]}, []
        )
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
    if values is not None:
        data["values"] = list(values)
    return _interaction(
        fake,
        3,
        data,
        user_id=user_id,
        permissions=permissions,
        roles=roles,
        interaction_id=interaction_id,
        channel_id=channel_id if channel_id is not None else int(message["channel_id"]),
        in_guild=in_guild,
        locale=locale,
        message=message,
    )
