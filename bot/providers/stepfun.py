"""StepFun: the account balance in CNY from `/v1/accounts`."""

from __future__ import annotations

from typing import Any

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import AuthError, BadResponseError, FetchRequest, Provider, amount, require


class StepFunProvider(
    Provider,
    name="stepfun",
    base_url="https://api.stepfun.com",
    key="API key (platform.stepfun.com > API keys)",
    env="STEPFUN_API_KEY",
):
    """Balance of a StepFun account (CNY), with its cash and voucher parts in the notes."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read the account; the body has no currency: StepFun bills in CNY."""
        try:
            body = await request.http.get_json(request.url("/v1/accounts"), headers=request.bearer())
        except AuthError as exc:
            raise AuthError(
                f"{exc.message}. Check {request.key_source} (platform.stepfun.com > API keys)", status=exc.status
            ) from None
        return parse_account(body)


def parse_account(body: Any) -> ProviderReport:
    """Report from a `/v1/accounts` body: `balance` in CNY; cash, voucher and account type as notes."""
    if not isinstance(body, dict):
        raise BadResponseError("stepfun response is not an object")
    balance = Money(amount(require(body, "balance", "stepfun"), "balance", "stepfun"), "CNY")
    notes: list[str] = []
    parts = []
    for field, label in (("total_cash_balance", "cash"), ("total_voucher_balance", "vouchers")):
        if body.get(field) is not None:
            parts.append(f"{label} {Money(amount(body[field], field, 'stepfun'), 'CNY').format()}")
    if parts:
        notes.append("of which " + ", ".join(parts))
    kind = body.get("type")
    if kind is not None:
        if not isinstance(kind, str):
            raise BadResponseError("stepfun 'type' is not a string")
        notes.append(f"{kind[:40]} account")
    return ProviderReport(
        currency="CNY",
        balance=balance,
        balance_source=BalanceSource.REPORTED,
        balances=(balance,),
        notes=tuple(notes),
    )
