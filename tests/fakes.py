"""A loopback fake of every provider's billing API, built from ../shared/reference/provider-apis.md.

Each provider lives under its own path prefix (`/openai`, `/anthropic`, ...), so one server stands in for
all hosts: an account's `base_url` is `http://127.0.0.1:PORT/<provider>`. Behaviour is data on
`FakeProviders` (balances, daily spend, key rules, scripted failures) and every request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HTML_PAGE = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@dataclass
class Scripted:
    """A canned answer served instead of the normal one."""

    status: int
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stall: bool = False  # send half a body, then stop talking

    def encoded(self) -> bytes:
        """The body as bytes."""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class RecordedRequest:
    """One request the fake received."""

    provider: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    at: float


def utc_today() -> date:
    """Today in UTC (the fake serves data relative to the real clock)."""
    return datetime.now(UTC).date()


@dataclass
class FakeProviders:
    """State and behaviour of the fake; tests change the fields, the server reads them."""

    latency: float = 0.0
    # openai (admin costs)
    openai_daily: dict[date, Decimal] = field(default_factory=dict)
    openai_string_amounts: bool = False
    openai_results_key: str = "results"
    # anthropic: amounts in cents
    anthropic_daily_cents: dict[date, Decimal] = field(default_factory=dict)
    # openrouter
    openrouter_total_credits: Decimal = Decimal("100.5")
    openrouter_total_usage: Decimal = Decimal("25.75")
    openrouter_normal_key_mode: str = "403"  # "403", "zeros" or "ok" (old behaviour)
    openrouter_key: dict[str, Any] = field(
        default_factory=lambda: {
            "label": "sk-or-v1-au7...890",
            "limit": 100,
            "limit_remaining": 74.5,
            "limit_reset": "monthly",
            "usage": 25.5,
            "usage_daily": 1.5,
            "usage_weekly": 9.0,
            "usage_monthly": 25.5,
            "is_free_tier": False,
            "include_byok_in_limit": False,
        }
    )
    openrouter_activity: list[dict[str, Any]] = field(default_factory=list)
    # deepseek
    deepseek_infos: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {
                "currency": "CNY",
                "total_balance": "110.00",
                "granted_balance": "10.00",
                "topped_up_balance": "100.00",
            }
        ]
    )
    deepseek_available: bool = True
    # moonshot
    moonshot_data: dict[str, Any] = field(
        default_factory=lambda: {
            "available_balance": 49.58894,
            "voucher_balance": 46.58893,
            "cash_balance": 3.00001,
        }
    )
    # openai legacy dashboard
    legacy_total_available: float = 17.3715455
    legacy_grants: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {
                "object": "credit_grant",
                "id": "grant-1",
                "grant_amount": 18.0,
                "used_amount": 0.6284545,
                "effective_at": 1673740800.0,
                "expires_at": 1682899200.0,
            }
        ]
    )
    legacy_daily_cents: dict[date, float] = field(default_factory=dict)
    # scripted answers per provider, served first-in first-out before normal behaviour
    scripts: dict[str, list[Scripted]] = field(default_factory=lambda: defaultdict(list))
    # provider -> one of ECHO_MODES: every request is answered by echoing the key it carried (secrecy tests)
    echo_key: dict[str, str] = field(default_factory=dict)
    # a lasting fault per provider: served to every request (once its scripted answers are used up) until
    # cleared, so a test need not know how many requests and retries a fetch makes
    faults: dict[str, Scripted] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)  # set when the server stops

    def script(self, provider: str, *answers: Scripted) -> None:
        """Queue canned answers for a provider."""
        with self.lock:
            self.scripts[provider].extend(answers)

    def fail(self, provider: str, answer: Scripted | None) -> None:
        """Answer every request of a provider with `answer` from now on; None ends the fault."""
        with self.lock:
            if answer is None:
                self.faults.pop(provider, None)
            else:
                self.faults[provider] = answer

    def count(self, provider: str, path_suffix: str = "") -> int:
        """How many requests reached a provider (optionally one path)."""
        return sum(1 for r in self.requests if r.provider == provider and r.path.endswith(path_suffix))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        segments = parts.path.strip("/").split("/", 1)
        provider = segments[0]
        path = "/" + (segments[1] if len(segments) > 1 else "")
        query = parse_qs(parts.query)
        state = self.server.state
        with state.lock:
            state.requests.append(
                RecordedRequest(
                    provider, path, query, {k.lower(): v for k, v in self.headers.items()}, time.monotonic()
                )
            )
            state.in_flight[provider] += 1
            state.peak_in_flight[provider] = max(state.peak_in_flight[provider], state.in_flight[provider])
            scripted = (
                state.scripts[provider].pop(0) if state.scripts.get(provider) else state.faults.get(provider)
            )
        try:
            if state.latency:
                time.sleep(state.latency)
            if scripted is not None:
                self._scripted(scripted)
                return
            if provider in state.echo_key:
                key = _bearer(self.headers_lower()) or self.headers.get("x-api-key", "")
                base = f"http://127.0.0.1:{self.server.server_address[1]}/{provider}"
                self._scripted(echo_answer(state.echo_key[provider], key, base))
                return
            handler = ROUTES.get(provider)
            if handler is None:
                self._json(404, {"error": {"message": f"no fake for {provider}"}})
                return
            status, body, headers = handler(state, path, query, {k.lower(): v for k, v in self.headers.items()})
            self._json(status, body, headers)
        finally:
            with state.lock:
                state.in_flight[provider] -= 1

    def headers_lower(self) -> dict[str, str]:
        """Request headers with lower-case names."""
        return {k.lower(): v for k, v in self.headers.items()}

    def _scripted(self, answer: Scripted) -> None:
        # Waits end early when the server stops, so no thread outlives its test to write to a closed socket.
        if answer.delay and self.server.state.stopping.wait(answer.delay):
            return
        body = answer.encoded()
        self.send_response(answer.status)
        content_type = answer.headers.get(
            "Content-Type", "text/html" if body.startswith(b"<") else "application/json"
        )
        self.send_header("Content-Type", content_type)
        for key, value in answer.headers.items():
            if key != "Content-Type":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if answer.stall:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.server.state.stopping.wait(30)
            return
        self.wfile.write(body)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FakeProviders


class _NoDelayHandler(_Handler):
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the client's
    # delayed ACK, about 40 ms per request.
    disable_nagle_algorithm = True


class _DeepQueueServer(_Server):
    # The default accept queue of 5 drops connections when many are opened at once, and the client only
    # tries again a second later: a delay no real provider adds.
    request_queue_size = 128


Answer = tuple[int, Any, dict[str, str]]


def _bearer(headers: dict[str, str]) -> str:
    value = headers.get("authorization", "")
    return value[7:] if value.startswith("Bearer ") else ""


def _openai_error(status: int, message: str, type_: str = "invalid_request_error") -> Answer:
    return status, {"error": {"message": message, "type": type_, "param": None, "code": None}}, {}


def _money_text(value: Decimal) -> str:
    return format(value, "f")


def _openai(state: FakeProviders, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    if path.startswith("/dashboard/") or path.startswith("/v1/dashboard/"):
        return _legacy(state, path.removeprefix("/v1"), query, headers)
    if path != "/v1/organization/costs":
        return _openai_error(404, f"Invalid URL (GET {path})")
    key = _bearer(headers)
    if not key:
        return _openai_error(401, "You didn't provide an API key.")
    if not key.startswith("sk-admin-"):
        return _openai_error(
            403, "You have insufficient permissions for this operation. Missing scopes: api.usage.read."
        )
    try:
        start = int(query["start_time"][0])
    except (KeyError, ValueError):
        return _openai_error(400, "start_time is required")
    now = time.time()
    end = int(query.get("end_time", [str(int(now))])[0])
    if end > now + 5:
        return _openai_error(400, "end_time must not be in the future")
    limit = int(query.get("limit", ["7"])[0])
    if not 1 <= limit <= 180:
        return _openai_error(400, "limit must be between 1 and 180")
    page = int(query.get("page", ["page_0"])[0].removeprefix("page_") or 0)
    bucket_starts = list(range(start - start % 86400, end, 86400))
    chosen = bucket_starts[page * limit : (page + 1) * limit]
    data = []
    for bucket_start in chosen:
        day = datetime.fromtimestamp(bucket_start, UTC).date()
        results = []
        if day in state.openai_daily:
            value = state.openai_daily[day]
            results.append(
                {
                    "object": "organization.costs.result",
                    "amount": {
                        "value": _money_text(value) if state.openai_string_amounts else float(value),
                        "currency": "usd",
                    },
                    "line_item": None,
                    "project_id": None,
                    "api_key_id": None,
                    "quantity": None,
                    "quantity_unit": None,
                }
            )
        data.append(
            {
                "object": "bucket",
                "start_time": bucket_start,
                "end_time": bucket_start + 86400,
                state.openai_results_key: results,
            }
        )
    has_more = (page + 1) * limit < len(bucket_starts)
    return (
        200,
        {
            "object": "page",
            "data": data,
            "has_more": has_more,
            "next_page": f"page_{page + 1}" if has_more else None,
        },
        {},
    )


def _anthropic(state: FakeProviders, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    def error(status: int, kind: str, message: str) -> Answer:
        return status, {"type": "error", "error": {"type": kind, "message": message}}, {}

    if path != "/v1/organizations/cost_report":
        return error(404, "not_found_error", "Not found")
    key = headers.get("x-api-key", "")
    if not key:
        return error(401, "authentication_error", "x-api-key header is required")
    if not key.startswith("sk-ant-admin"):
        return error(401, "authentication_error", "invalid x-api-key")
    if "anthropic-version" not in headers:
        return error(400, "invalid_request_error", "anthropic-version header is required")
    try:
        start = datetime.fromisoformat(query["starting_at"][0].replace("Z", "+00:00")).date()
    except (KeyError, ValueError):
        return error(400, "invalid_request_error", "starting_at is required")
    limit = int(query.get("limit", ["7"])[0])
    if not 1 <= limit <= 31:
        return error(400, "invalid_request_error", "limit must be between 1 and 31")
    page = int(query.get("page", ["page_0"])[0].removeprefix("page_") or 0)
    # Like the real API, the report ends at 00:00 UTC today unless `ending_at` says otherwise: without it,
    # today's bucket never comes.
    try:
        end = datetime.fromisoformat(query["ending_at"][0].replace("Z", "+00:00")).date()
    except KeyError:
        end = utc_today()
    except ValueError:
        return error(400, "invalid_request_error", "ending_at is not a timestamp")
    days = [start + timedelta(days=i) for i in range((end - start).days)]
    chosen = days[page * limit : (page + 1) * limit]
    data = []
    for day in chosen:
        results = []
        if day in state.anthropic_daily_cents:
            cents = state.anthropic_daily_cents[day]
            # Two line items per day, the way grouping by description splits them.
            half = (cents / 2).quantize(Decimal("0.00001"))
            for part in (half, cents - half):
                results.append(
                    {
                        "amount": _money_text(part),
                        "currency": "USD",
                        "cost_type": "tokens",
                        "description": None,
                        "model": None,
                        "service_tier": None,
                        "token_type": None,
                        "workspace_id": None,
                        "context_window": None,
                        "inference_geo": None,
                    }
                )
        data.append(
            {
                "starting_at": f"{day}T00:00:00Z",
                "ending_at": f"{day + timedelta(days=1)}T00:00:00Z",
                "results": results,
            }
        )
    has_more = (page + 1) * limit < len(days)
    return 200, {"data": data, "has_more": has_more, "next_page": f"page_{page + 1}" if has_more else None}, {}


def _openrouter(state: FakeProviders, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    key = _bearer(headers)
    if not key.startswith("sk-or-"):
        return 401, {"error": {"message": "User not found.", "code": 401}}, {}
    management = key.startswith("sk-or-mgmt-")
    if path == "/api/v1/credits":
        if not management and state.openrouter_normal_key_mode == "403":
            return 403, {"error": {"message": "Only management keys can perform this operation", "code": 403}}, {}
        if not management and state.openrouter_normal_key_mode == "zeros":
            return 200, {"data": {"total_credits": 0, "total_usage": 0}}, {}
        return (
            200,
            {
                "data": {
                    "total_credits": float(state.openrouter_total_credits),
                    "total_usage": float(state.openrouter_total_usage),
                }
            },
            {},
        )
    if path in ("/api/v1/key", "/api/v1/auth/key"):
        data = dict(state.openrouter_key)
        data.update(is_management_key=management, is_provisioning_key=management)
        return 200, {"data": data}, {}
    if path == "/api/v1/activity":
        if not management:
            return 403, {"error": {"message": "Only management keys can perform this operation", "code": 403}}, {}
        # Rows exist only for days with usage; without `date`, the last 30 completed UTC days.
        completed = {str(utc_today() - timedelta(days=i)) for i in range(1, 31)}
        wanted = {query["date"][0]} if "date" in query else completed
        return 200, {"data": [r for r in state.openrouter_activity if str(r["date"])[:10] in wanted]}, {}
    return 404, {"error": {"message": "Not Found", "code": 404}}, {}


def _deepseek(state: FakeProviders, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    key = _bearer(headers)
    if not key.startswith("sk-"):
        return (
            401,
            {
                "error": {
                    "message": "Authentication Fails (auth header format should be Bearer sk-...)",
                    "type": "authentication_error",
                    "param": None,
                    "code": "invalid_request_error",
                }
            },
            {},
        )
    if key.endswith("revoked"):
        return (
            401,
            {
                "error": {
                    "message": f"Authentication Fails, Your api key: ****{key[-4:]} is invalid",
                    "type": "authentication_error",
                    "param": None,
                    "code": "invalid_request_error",
                }
            },
            {},
        )
    if path != "/user/balance":
        return 404, {"error": {"message": "not found"}}, {}
    return 200, {"is_available": state.deepseek_available, "balance_infos": state.deepseek_infos}, {}


def _moonshot(state: FakeProviders, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    if not _bearer(headers).startswith("sk-"):
        return 401, {"error": {"message": "Invalid Authentication", "type": "invalid_authentication_error"}}, {}
    if path != "/v1/users/me/balance":
        return 404, {"error": {"message": "not found", "type": "resource_not_found_error"}}, {}
    return 200, {"code": 0, "data": state.moonshot_data, "scode": "0x0", "status": True}, {}


def _legacy(state: FakeProviders, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    key = _bearer(headers)
    if not key.startswith("sess-"):
        return _openai_error(
            403,
            f"Your request to GET {path} must be made with a session key (that is, it can only be made from "
            "the browser). You made it with the following key type: secret.",
            "server_error",
        )
    if key.endswith("expired"):
        return _openai_error(401, "Invalid authorization header", "invalid_request_error")
    if path == "/dashboard/billing/credit_grants":
        return (
            200,
            {
                "object": "credit_summary",
                "total_granted": 18.0,
                "total_used": 0.6284545,
                "total_available": state.legacy_total_available,
                "grants": {"object": "list", "data": state.legacy_grants},
            },
            {},
        )
    if path == "/dashboard/billing/usage":
        start = date.fromisoformat(query["start_date"][0])
        end = date.fromisoformat(query["end_date"][0])
        if (end - start).days > 100:
            return _openai_error(400, "date range too long")
        daily = []
        for day, cents in sorted(state.legacy_daily_cents.items()):
            if start <= day < end:
                stamp = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
                daily.append(
                    {
                        "timestamp": stamp,
                        "line_items": [{"name": "Chat models", "cost": cents}, {"name": "GPT-4", "cost": 0.0}],
                    }
                )
        total = sum(c for d, c in state.legacy_daily_cents.items() if start <= d < end)
        return 200, {"object": "list", "daily_costs": daily, "total_usage": total}, {}
    if path == "/dashboard/billing/subscription":
        return (
            200,
            {
                "object": "billing_subscription",
                "has_payment_method": True,
                "hard_limit_usd": 120.0,
                "soft_limit_usd": 100.0,
                "system_hard_limit_usd": 120.0,
                "access_until": 1893456000,
            },
            {},
        )
    return _openai_error(404, "not found")


# What each provider answers, as documented or observed, when a key that worked is revoked (all HTTP 401).
REVOKED_KEY_ERRORS: dict[str, dict[str, Any]] = {
    "openai": {
        "error": {
            "message": "Incorrect API key provided: sk-admin-****0000. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    },
    "anthropic": {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
    "openrouter": {"error": {"message": "User not found.", "code": 401}},
    "deepseek": {
        "error": {
            "message": "Authentication Fails, Your api key: ****0000 is invalid",
            "type": "authentication_error",
            "param": None,
            "code": "invalid_request_error",
        }
    },
    "moonshot": {"error": {"message": "Invalid Authentication", "type": "invalid_authentication_error"}},
    "openai-legacy": {
        "error": {
            "message": "Invalid authorization header",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    },
}


# Ways real APIs and the proxies in front of them have been seen to hand a key back to its sender.
ECHO_MODES = (
    "401",
    "html-500",
    "error-200",
    "header",
    "redirect",
    "text-400",
    "status-false",
    "detail-422",
    "429",
)


def echo_answer(mode: str, key: str, base: str) -> Scripted:
    """An answer that carries `key` back in its body, its headers or its redirect target."""
    if mode == "401":
        message = f"Incorrect API key provided: {key}. You can find your API key at https://platform.example/keys."
        return Scripted(
            401, {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
        )
    if mode == "html-500":
        page = f"<!DOCTYPE html><html><body><h1>500</h1><pre>Authorization: Bearer {key}</pre></body></html>"
        return Scripted(500, page, {"Content-Type": "text/html"})
    if mode == "error-200":
        return Scripted(200, {"error": {"message": f"Key {key} is disabled", "code": 401}})
    if mode == "header":
        return Scripted(
            401,
            {"error": {"message": "invalid_token"}},
            {
                "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{key} is revoked"',
                "X-Key": key,
            },
        )
    if mode == "redirect":
        return Scripted(
            302,
            f"Redirecting to {base}/login?api_key={key}",
            {"Location": f"{base}/login?api_key={key}", "Content-Type": "text/plain"},
        )
    if mode == "text-400":
        return Scripted(
            400, f"Bad Request: malformed header 'Authorization: Bearer {key}'", {"Content-Type": "text/plain"}
        )
    if mode == "status-false":  # Moonshot's envelope: no `error` member, the message beside `status`
        return Scripted(
            200, {"code": 401, "status": False, "message": f"Invalid Authentication: {key}", "scode": "0x5"}
        )
    if mode == "detail-422":
        return Scripted(422, {"detail": f"api key {key} is not valid for this organization"})
    if mode == "429":
        return Scripted(429, {"error": {"message": f"Rate limit reached for key {key}"}}, {"Retry-After": "0"})
    raise ValueError(f"unknown echo mode {mode!r}")


ROUTES = {
    "openai": _openai,
    "anthropic": _anthropic,
    "openrouter": _openrouter,
    "deepseek": _deepseek,
    "moonshot": _moonshot,
    "openai-legacy": _openai,
}


class FakeProviderServer:
    """Runs `FakeProviders` on 127.0.0.1 in a background thread."""

    def __init__(self, state: FakeProviders | None = None, *, many_requests: bool = False) -> None:
        """`many_requests`: for tests that make hundreds of requests, many at once (no Nagle delay, a deep
        accept queue)."""
        self.state = state or FakeProviders()
        if many_requests:
            self._server: _Server = _DeepQueueServer(("127.0.0.1", 0), _NoDelayHandler)
        else:
            self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def base_url(self, provider: str) -> str:
        """Base URL to configure for one provider's accounts."""
        return f"{self.url}/{provider}"

    def __enter__(self) -> FakeProviderServer:
        self.state.stopping.clear()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
