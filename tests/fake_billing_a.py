"""A loopback fake of the relay (one-api / new-api), SiliconFlow and Novita billing APIs, built from
../shared/reference/provider-apis-2.md section 2, in the style of `tests/fakes.py`.

Each provider lives under its own path prefix (`/relay`, `/siliconflow`, `/novita`), so one server stands in
for all hosts: an account's `base_url` is `http://127.0.0.1:PORT/<provider>`. Behaviour is data on
`FakeBillingA` and every request is recorded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tests.fakes import RecordedRequest, Scripted
from tests.loopback_billing import Answer, LoopbackBilling

KEYS = {
    "relay": "sk-TESTKEYrelay00000000000000000",
    "siliconflow": "sk-TESTKEYsiliconflow0000000000",
    "novita": "sk_TESTKEYnovita0000000000000000",
}


@dataclass
class FakeBillingA:
    """State and behaviour of the fake; tests change the fields, the server reads them."""

    # relay: the subscription body's fields as served (None leaves the field out), usage in hundredths
    relay_hard_limit: Any = 100.0
    relay_access_until: Any = 0
    relay_total_usage: Any = 2500.0
    relay_error: dict[str, Any] | None = None  # served inside HTTP 200 on both endpoints when set
    # siliconflow
    siliconflow_code: Any = 20000
    siliconflow_status: Any = True
    siliconflow_message: str = "OK"
    siliconflow_data: dict[str, Any] = field(
        default_factory=lambda: {
            "id": "user-1",
            "name": "someone",
            "balance": "0.88",
            "chargeBalance": "88.00",
            "totalBalance": "88.88",
            "status": "normal",
        }
    )
    # novita: strings in 1/10000 USD
    novita_detail: dict[str, Any] = field(
        default_factory=lambda: {
            "availableBalance": "1000000",
            "cashBalance": "800000",
            "creditLimit": "200000",
            "pendingCharges": "0",
            "outstandingInvoices": "0",
        }
    )
    # A lasting fault, keyed by provider ("relay") or provider and path ("relay/v1/dashboard/billing/usage").
    faults: dict[str, Scripted] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, provider: str, path_suffix: str = "") -> int:
        """How many requests reached a provider (optionally one path)."""
        return sum(1 for r in self.requests if r.provider == provider and r.path.endswith(path_suffix))

    def last(self, provider: str, path_suffix: str = "") -> RecordedRequest:
        """The latest request a provider got (optionally on one path)."""
        return [r for r in self.requests if r.provider == provider and r.path.endswith(path_suffix)][-1]


def _bearer(headers: dict[str, str]) -> str:
    value = headers.get("authorization", "")
    return value[7:] if value.startswith("Bearer ") else ""


def _without_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _relay(state: FakeBillingA, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    # one-api and new-api serve both paths with and without the /v1 prefix.
    path = path.removeprefix("/v1")
    if _bearer(headers) != KEYS["relay"]:
        return 401, {"error": {"message": "无效的令牌 (invalid token)", "type": "new_api_error"}}
    if state.relay_error is not None and path.startswith("/dashboard/billing/"):
        return 200, {"error": state.relay_error}
    if path == "/dashboard/billing/subscription":
        return 200, _without_none(
            {
                "object": "billing_subscription",
                "has_payment_method": True,
                "soft_limit_usd": state.relay_hard_limit,
                "hard_limit_usd": state.relay_hard_limit,
                "system_hard_limit_usd": state.relay_hard_limit,
                "access_until": state.relay_access_until,
            }
        )
    if path == "/dashboard/billing/usage":
        # Relays ignore the window, but original OpenAI refused a usage call without one.
        try:
            date.fromisoformat(query["start_date"][0])
            date.fromisoformat(query["end_date"][0])
        except (KeyError, ValueError):
            return 400, {"error": {"message": "start_date and end_date are required", "type": "invalid_request"}}
        return 200, _without_none({"object": "list", "total_usage": state.relay_total_usage})
    return 404, {"error": {"message": f"Invalid URL (GET {path})", "type": "invalid_request_error"}}


def _siliconflow(state: FakeBillingA, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    if _bearer(headers) != KEYS["siliconflow"]:
        return 401, {"code": 20002, "message": "Invalid token", "status": False, "data": None}
    if path != "/v1/user/info":
        return 404, {"code": 40400, "message": "Not Found", "status": False, "data": None}
    return 200, {
        "code": state.siliconflow_code,
        "message": state.siliconflow_message,
        "status": state.siliconflow_status,
        "data": state.siliconflow_data,
    }


def _novita(state: FakeBillingA, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
    if _bearer(headers) != KEYS["novita"]:
        return 401, {"code": 401, "reason": "INVALID_API_KEY", "message": "invalid api key", "metadata": {}}
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        # The reference: Bearer and Content-Type are both required, even on this GET.
        return 400, {"code": 400, "reason": "INVALID_REQUEST", "message": "Content-Type must be application/json"}
    if path != "/openapi/v1/billing/balance/detail":
        return 404, {"code": 404, "reason": "NOT_FOUND", "message": "not found"}
    return 200, state.novita_detail


ROUTES = {"relay": _relay, "siliconflow": _siliconflow, "novita": _novita}


class FakeBillingAServer(LoopbackBilling[FakeBillingA]):
    """Runs `FakeBillingA` on 127.0.0.1 in a background thread."""

    def __init__(self, state: FakeBillingA | None = None) -> None:
        super().__init__(state or FakeBillingA(), ROUTES)
