"""DeepInfra (experimental): funds left from `/payment/checklist`, and the current period's spend when
`/payment/usage` answers."""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from typing import Any

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import (
    AuthError,
    BadResponseError,
    FetchRequest,
    Provider,
    ProviderError,
    amount,
    require,
    settle,
)

log = logging.getLogger(__name__)

CENTS = Decimal(100)


class DeepInfraProvider(
    Provider,
    name="deepinfra",
    base_url="https://api.deepinfra.com",
    experimental=True,
    key="API key (deepinfra.com > Dashboard > API Keys)",
    env="DEEPINFRA_API_KEY",
):
    """Funds available on a DeepInfra account (USD), and this billing period's spend as extra information."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read the checklist (required) and the usage (optional) at once."""
        checklist, usage = await settle(
            _get(request, "/payment/checklist", {"compute_owed": "true"}),
            _get(request, "/payment/usage", {"from": "current"}),
        )
        if isinstance(checklist, ProviderError):
            raise checklist
        report = parse_checklist(checklist)
        try:
            if isinstance(usage, ProviderError):
                raise usage
            spent = parse_usage(usage)
        except ProviderError as exc:  # extra information only: the balance stands without it
            log.info("deepinfra usage unavailable: %s", exc)
            return replace(report, notes=(*report.notes, f"spend this period unavailable: {exc.message}"))
        return replace(report, spent_month=spent)


async def _get(request: FetchRequest, path: str, params: dict[str, str]) -> Any:
    try:
        return await request.http.get_json(request.url(path), headers=request.bearer(), params=params)
    except AuthError as exc:
        raise AuthError(
            f"{exc.message}. Check {request.key_source} (deepinfra.com > Dashboard > API Keys)", status=exc.status
        ) from None


def parse_checklist(body: Any) -> ProviderReport:
    """Report from a checklist body: `stripe_balance` is USD where a negative value is funds available."""
    stripe = amount(require(body, "stripe_balance", "deepinfra"), "stripe_balance", "deepinfra")
    balance = Money(Decimal(0) - stripe, "USD")  # 0 - x: no "-0"
    notes = ["experimental: read from DeepInfra's payment checklist (undocumented)"]
    if stripe > 0:
        notes.append(f"DeepInfra shows {Money(stripe, 'USD').format()} owed")
    return ProviderReport(
        currency="USD",
        balance=balance,
        balance_source=BalanceSource.REPORTED,
        balances=(balance,),
        notes=tuple(notes),
    )


def parse_usage(body: Any) -> Money:
    """This billing period's spend from a usage body: `total_cost` in US cents."""
    cost = amount(require(body, "total_cost", "deepinfra", "usage"), "total_cost", "deepinfra")
    if cost < 0:
        raise BadResponseError("deepinfra usage total_cost is negative")
    return Money(cost / CENTS, "USD")
