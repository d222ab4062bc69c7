"""DeepSeek: the real balance from `/user/balance`, one entry per currency."""

from __future__ import annotations

from typing import Any

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import (
    AuthError,
    BadResponseError,
    FetchRequest,
    Provider,
    amount,
    currency_code,
    expect_list,
    require,
)


class DeepSeekProvider(
    Provider,
    name="deepseek",
    base_url="https://api.deepseek.com",
    key="API key (platform.deepseek.com > API keys)",
    env="DEEPSEEK_API_KEY",
):
    """Balance of a DeepSeek account in CNY and/or USD."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read the per-currency balances and pick the account currency."""
        try:
            body = await request.http.get_json(request.url("/user/balance"), headers=request.bearer())
        except AuthError as exc:
            raise AuthError(
                f"{exc.message}. Check {request.key_source} (platform.deepseek.com > API keys)", status=exc.status
            ) from None
        return parse_balance(body, request.currency, request.shown_currency)


def parse_balance(body: Any, preferred: str | None, shown: str | None = None) -> ProviderReport:
    """Report from a `/user/balance` body; amounts in different currencies are kept apart."""
    infos = expect_list(require(body, "balance_infos", "deepseek"), "'balance_infos'", "deepseek")
    balances: list[Money] = []
    for info in infos:
        currency = currency_code(require(info, "currency", "deepseek", "balance entry"), "currency", "deepseek")
        if any(existing.currency == currency for existing in balances):
            raise BadResponseError(f"deepseek listed {currency} twice")
        balances.append(
            Money(
                amount(require(info, "total_balance", "deepseek", "balance entry"), "total_balance", "deepseek"),
                currency,
            )
        )
    if not balances:
        raise BadResponseError("deepseek returned no balance entries")
    chosen = _choose(balances, preferred, shown)
    notes: list[str] = []
    if body.get("is_available") is False:
        notes.append("DeepSeek says the balance is not available for API calls")
    return ProviderReport(
        currency=chosen.currency,
        balance=chosen,
        balance_source=BalanceSource.REPORTED,
        balances=tuple(balances),
        notes=tuple(notes),
    )


def _choose(balances: list[Money], preferred: str | None, shown: str | None) -> Money:
    """The configured currency (which must be listed); else the one shown before while it is listed; else
    the first with money in it."""
    if preferred:
        for money in balances:
            if money.currency == preferred:
                return money
        listed = ", ".join(m.currency for m in balances)
        raise BadResponseError(f"deepseek has no {preferred} balance (it lists {listed}); fix 'currency'")
    for money in balances:
        if money.currency == shown:
            return money
    for money in balances:
        if money.amount != 0:
            return money
    return balances[0]
