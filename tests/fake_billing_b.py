"""A loopback fake of the billing APIs of xAI, Venice, StepFun, DeepInfra and ElevenLabs, built from
../shared/reference/provider-apis-2.md section 2 (in the style of tests/fakes.py).

Each provider lives under its own path prefix (`/xai`, `/venice`, ...), so one server stands in for all hosts:
an account's `base_url` is `http://127.0.0.1:PORT/<provider>`. Behaviour is data on `FakeBillingB` (answers,
accepted keys, scripted and lasting failures) and every request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes import RecordedRequest, Scripted

# The keys the fake accepts; tests use them as canaries too (see tests/test_providers_b.py).
KEYS_B = {
    "xai": "xai-token-TESTKEYxai0000000000000",
    "venice": "vapi-TESTKEYvenice000000000000",
    "stepfun": "sf-TESTKEYstepfun00000000000",
    "deepinfra": "di-TESTKEYdeepinfra000000000",
    "elevenlabs": "sk_TESTKEYelevenlabs0000000000",
}


@dataclass
class FakeBillingB:
    """State and behaviour of the fake; tests change the fields, the server reads them."""

    keys: dict[str, str] = field(default_factory=lambda: dict(KEYS_B))
    # xai: the management key's validation answer, and each team's prepaid ledger total (US cents, negative
    # is credit)
    xai_validation: dict[str, Any] = field(
        default_factory=lambda: {
            "apiKeyId": "mk-1",
            "name": "billing",
            "teamId": "team-1",
            "scope": "SCOPE_TEAM",
            "scopeId": "team-1",
            "acls": ["api-key:endpoint:*"],
        }
    )
    xai_totals: dict[str, str] = field(default_factory=lambda: {"team-1": "-2500"})
    # venice
    venice_can_consume: bool = True
    venice_consumption: str | None = "DIEM"
    venice_balances: dict[str, Any] = field(default_factory=lambda: {"diem": 90.5, "usd": 25})
    venice_allocation: Any = 100
    # stepfun
    stepfun_account: dict[str, Any] = field(
        default_factory=lambda: {
            "object": "account",
            "type": "prepaid",
            "balance": 88.42,
            "total_cash_balance": 68.42,
            "total_voucher_balance": 20,
        }
    )
    # deepinfra: stripe_balance in USD (negative is funds available); usage total_cost in cents
    deepinfra_checklist: dict[str, Any] = field(
        default_factory=lambda: {"stripe_balance": -12.5, "suspended": False, "overdue_invoices": 0}
    )
    deepinfra_usage: dict[str, Any] = field(default_factory=lambda: {"total_cost": 340, "items": []})
    # elevenlabs
    elevenlabs_subscription: dict[str, Any] = field(
        default_factory=lambda: {
            "tier": "creator",
            "character_count": 17500,
            "character_limit": 30000,
            "next_character_count_reset_unix": 1893456000,  # 2030-01-01T00:00:00Z
            "currency": "usd",
            "status": "active",
        }
    )
    # scripted answers, first-in first-out before normal behaviour, keyed by provider or "provider/path"
    scripts: dict[str, list[Scripted]] = field(default_factory=lambda: defaultdict(list))
    # lasting faults keyed by provider or "provider/path" (the path wins): served until cleared
    faults: dict[str, Scripted] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def script(self, where: str, *answers: Scripted) -> None:
        """Queue canned answers for a provider, or for one path of it ("deepinfra/payment/usage")."""
        with self.lock:
            self.scripts[where].extend(answers)

    def fail(self, where: str, answer: Scripted | None) -> None:
        """Answer every request of a provider (or of one of its paths) with `answer`; None ends the fault."""
        with self.lock:
            if answer is None:
                self.faults.pop(where, None)
            else:
                self.faults[where] = answer

    def count(self, provider: str, path_suffix: str = "") -> int:
        """How many requests reached a provider (optionally one path)."""
        return sum(1 for r in self.requests if r.provider == provider and r.path.endswith(path_suffix))

    def _canned(self, provider: str, path: str) -> Scripted | None:
        for where in (f"{provider}{path}", provider):
            if self.scripts.get(where):
                return self.scripts[where].pop(0)
        return self.faults.get(f"{provider}{path}") or self.faults.get(provider)


Answer = tuple[int, Any]


def _bearer(headers: dict[str, str]) -> str:
    value = headers.get("authorization", "")
    return value[7:] if value.startswith("Bearer ") else ""


def _xai(state: FakeBillingB, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    if _bearer(headers) != state.keys["xai"]:
        return 401, {"code": "Unauthenticated", "error": "Invalid management key"}
    if path == "/auth/management-keys/validation":
        return 200, state.xai_validation
    parts = path.strip("/").split("/")
    if len(parts) == 6 and parts[:3] == ["v1", "billing", "teams"] and parts[4:] == ["prepaid", "balance"]:
        team = unquote(parts[3])
        if team not in state.xai_totals:
            return 403, {"code": "PermissionDenied", "error": f"The key has no access to team {team}"}
        return 200, {"changes": [], "total": {"val": state.xai_totals[team]}}
    return 404, {"code": "NotFound", "error": "Not found"}


def _venice(state: FakeBillingB, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    if _bearer(headers) != state.keys["venice"]:
        return 401, {"error": "Authentication failed"}
    if path != "/api/v1/billing/balance":
        return 404, {"error": "Not found"}
    return 200, {
        "canConsume": state.venice_can_consume,
        "consumptionCurrency": state.venice_consumption,
        "balances": state.venice_balances,
        "diemEpochAllocation": state.venice_allocation,
    }


def _stepfun(state: FakeBillingB, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    if _bearer(headers) != state.keys["stepfun"]:
        return 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_api_key"}}
    if path != "/v1/accounts":
        return 404, {"error": {"message": "not found", "type": "not_found"}}
    return 200, state.stepfun_account


def _deepinfra(state: FakeBillingB, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    if _bearer(headers) != state.keys["deepinfra"]:
        return 401, {"detail": "Invalid token"}
    if path == "/payment/checklist":
        if query.get("compute_owed") != ["true"]:
            return 200, {k: v for k, v in state.deepinfra_checklist.items() if k != "stripe_balance"}
        return 200, state.deepinfra_checklist
    if path == "/payment/usage":
        if query.get("from") != ["current"]:
            return 422, {"detail": "from is required"}
        return 200, state.deepinfra_usage
    return 404, {"detail": "Not Found"}


def _elevenlabs(state: FakeBillingB, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    if headers.get("xi-api-key") != state.keys["elevenlabs"]:
        return 401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
    if path != "/v1/user/subscription":
        return 404, {"detail": {"status": "not_found", "message": "Not Found"}}
    return 200, state.elevenlabs_subscription


ROUTES = {
    "xai": _xai,
    "venice": _venice,
    "stepfun": _stepfun,
    "deepinfra": _deepinfra,
    "elevenlabs": _elevenlabs,
}


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
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.server.state
        with state.lock:
            state.requests.append(RecordedRequest(provider, path, query, headers, time.monotonic()))
            canned = state._canned(provider, path)
        if canned is not None:
            if canned.delay and state.stopping.wait(canned.delay):
                return
            content_type = canned.headers.get("Content-Type", "application/json")
            self._send(canned.status, canned.encoded(), content_type, canned.headers)
            return
        route = ROUTES.get(provider)
        if route is None:
            self._send(404, json.dumps({"error": f"no fake for {provider}"}).encode())
            return
        status, body = route(state, path, query, headers)
        self._send(status, json.dumps(body).encode())

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (extra or {}).items():
            if key != "Content-Type":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FakeBillingB


class FakeBillingServer:
    """Runs `FakeBillingB` on 127.0.0.1 in a background thread."""

    def __init__(self, state: FakeBillingB | None = None) -> None:
        self.state = state or FakeBillingB()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def base_url(self, provider: str) -> str:
        """Base URL to configure for one provider's accounts."""
        return f"{self.url}/{provider}"

    def __enter__(self) -> FakeBillingServer:
        self.state.stopping.clear()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
