"""Venice: the balance being spent (USD, DIEM or another credit) from `/api/v1/billing/balance`."""

from __future__ import annotations

from typing import Any

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import AuthError, BadResponseError, FetchRequest, Provider, amount, require

REFUSED = "Venice says requests are refused (canConsume false)"


class VeniceProvider(
    Provider,
    name="venice",
    base_url="https://api.venice.ai",
    key="API key (venice.ai > Settings > API)",
    env="VENICE_API_KEY",
):
    """The balance Venice is drawing on, named by `consumptionCurrency`; the other one is listed beside it."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read the balances and which of them is being spent."""
        try:
            body = await request.http.get_json(request.url("/api/v1/billing/balance"), headers=request.bearer())
        except AuthError as exc:
            raise AuthError(
                f"{exc.message}. Check {request.key_source} (an API key from venice.ai > Settings > API)",
                status=exc.status,
            ) from None
        return parse_balance(body)


def parse_balance(body: Any) -> ProviderReport:
    """Report from a billing balance body. USD (or null) spends `balances.usd` in dollars, DIEM spends
    `balances.diem` in diem; any other consumption currency spends the same-named balance, in credits. Balances
    in other units are listed, never added."""
    if not isinstance(body, dict):
        raise BadResponseError("venice response is not an object")
    balances = require(body, "balances", "venice")
    if not isinstance(balances, dict):
        raise BadResponseError("venice 'balances' is not an object")
    if "consumptionCurrency" not in body:
        raise BadResponseError("venice response is missing 'consumptionCurrency'")
    spending = body["consumptionCurrency"]
    if spending is not None and (not isinstance(spending, str) or not spending.strip()):
        raise BadResponseError(f"venice consumptionCurrency is not a name: {str(spending)[:40]!r}")
    can_consume = require(body, "canConsume", "venice")
    if not isinstance(can_consume, bool):
        raise BadResponseError(f"venice canConsume is not true or false: {str(can_consume)[:40]!r}")

    code = "USD" if spending is None else spending.strip().upper()
    if code == "USD":
        key, unit = "usd", "USD"
    elif code == "DIEM":
        key, unit = "diem", "diem"
    else:
        key, unit = code.lower(), "credits"
        if key not in balances or balances[key] is None:
            listed = ", ".join(sorted(str(k) for k in balances)) or "none"
            raise BadResponseError(
                f"venice is spending {code[:40]!r} but lists no '{key[:40]}' balance (it lists: {listed[:120]})"
            )
    chosen = Money(amount(require(balances, key, "venice", "'balances'"), f"balances.{key}", "venice"), unit)
    listed_beside = [chosen]
    for other_key, other_unit in (("usd", "USD"), ("diem", "diem")):
        if other_key != key and balances.get(other_key) is not None:
            value = amount(balances[other_key], f"balances.{other_key}", "venice")
            listed_beside.append(Money(value, other_unit))

    notes: list[str] = []
    if code not in ("USD", "DIEM"):
        notes.append(f"Venice is spending {code} credits")
    allocation = body.get("diemEpochAllocation")
    if code == "DIEM" and allocation is not None:
        per_epoch = Money(amount(allocation, "diemEpochAllocation", "venice"), "diem")
        notes.append(f"DIEM allocation {per_epoch.format()} per epoch")
    if not can_consume:
        notes.append(f"{REFUSED}: API calls fail until the balance is topped up or renewed")
    return ProviderReport(
        currency=unit,
        balance=chosen,
        balance_source=BalanceSource.REPORTED,
        balances=tuple(listed_beside),
        notes=tuple(notes),
        refused=None if can_consume else REFUSED,
    )
