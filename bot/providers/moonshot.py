"""Moonshot / Kimi: the real balance from `/v1/users/me/balance` (CNY on .cn hosts, USD elsewhere)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import AuthError, BadResponseError, FetchRequest, Provider, amount, error_message, require

CHINA_BASE_URL = "https://api.moonshot.cn"


def host_currency(base_url: str) -> str:
    """The currency a Moonshot host bills in: CNY for the China platform, USD for the international one."""
    host = (urlsplit(base_url).hostname or "").lower()
    return "CNY" if host.endswith(".cn") else "USD"


class MoonshotProvider(
    Provider,
    name="moonshot",
    base_url="https://api.moonshot.ai",
    key="API key (platform.moonshot.ai, or .cn with base_url https://api.moonshot.cn)",
    env="MOONSHOT_API_KEY",
):
    """Available, voucher and cash balance of a Moonshot account."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read the balance; the body has no currency, so it comes from the host or the account setting."""
        try:
            body = await request.http.get_json(request.url("/v1/users/me/balance"), headers=request.bearer())
        except AuthError as exc:
            raise AuthError(
                f"{exc.message}. Check {request.key_source}; Moonshot keys are bound to a region: a key "
                f"from platform.moonshot.cn needs base_url {CHINA_BASE_URL}, one from platform.moonshot.ai "
                "the default host",
                status=exc.status,
            ) from None
        return parse_balance(body, request.currency or host_currency(request.base_url))


def parse_balance(body: Any, currency: str) -> ProviderReport:
    """Report from a Moonshot balance body; `status: false` or a non-zero `code` is an error."""
    if not isinstance(body, dict):
        raise BadResponseError("moonshot response is not an object")
    if body.get("status") is not True or body.get("code", 0) != 0:
        detail = error_message(body) or f"status={body.get('status')!r} code={body.get('code')!r}"
        raise BadResponseError(f"moonshot reported an error: {detail}")
    data = require(body, "data", "moonshot")
    available = Money(
        amount(require(data, "available_balance", "moonshot"), "available_balance", "moonshot"), currency
    )
    notes: list[str] = []
    cash = data.get("cash_balance")
    if cash is not None and amount(cash, "cash_balance", "moonshot") < 0:
        notes.append("cash balance is negative (arrears); only vouchers remain")
    return ProviderReport(
        currency=currency,
        balance=available,
        balance_source=BalanceSource.REPORTED,
        balances=(available,),
        notes=tuple(notes),
    )
