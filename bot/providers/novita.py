"""Novita: the spendable balance from `/openapi/v1/billing/balance/detail`, in 1/10000 USD."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import AuthError, FetchRequest, Provider, amount, require

NAME = "novita"
SCALE = Decimal(10000)  # amounts are strings in 1/10000 USD: "10000" is $1.00
KEY_PLACE = "novita.ai > Settings > Key management"


class NovitaProvider(
    Provider,
    name=NAME,
    base_url="https://api.novita.ai",
    key=f"API key ({KEY_PLACE})",
    env="NOVITA_API_KEY",
):
    """Available balance of a Novita account, with its cash and credit limit."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read the balance detail; Novita refuses the request without a JSON content type, even on a GET."""
        headers = {**request.bearer(), "Content-Type": "application/json"}
        try:
            body = await request.http.get_json(request.url("/openapi/v1/billing/balance/detail"), headers=headers)
        except AuthError as exc:
            raise AuthError(
                f"{exc.message}. Check {request.key_source} ({KEY_PLACE})", status=exc.status
            ) from None
        return parse_balance_detail(body)


def _dollars(body: Any, field: str) -> Money:
    return Money(amount(require(body, field, NAME), field, NAME) / SCALE, "USD")


def parse_balance_detail(body: Any) -> ProviderReport:
    """Report from a balance detail body: `availableBalance` is spendable; cash and credit limit are noted."""
    available = _dollars(body, "availableBalance")
    parts = [
        f"{label} {_dollars(body, field).format()}"
        for field, label in (("cashBalance", "cash"), ("creditLimit", "credit limit"))
        if body.get(field) is not None
    ]
    return ProviderReport(
        currency="USD",
        balance=available,
        balance_source=BalanceSource.REPORTED,
        balances=(available,),
        notes=(", ".join(parts),) if parts else (),
    )
