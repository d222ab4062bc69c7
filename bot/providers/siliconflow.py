"""SiliconFlow (experimental): the balance from `/v1/user/info` (USD on .com, CNY on the China host .cn)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import (
    AuthError,
    BadResponseError,
    FetchRequest,
    Provider,
    amount,
    error_message,
    require,
)

NAME = "siliconflow"
SUCCESS_CODE = 20000
KEY_PLACE = (
    "cloud.siliconflow.com > API keys; a key from cloud.siliconflow.cn needs base_url https://api.siliconflow.cn"
)


def host_currency(base_url: str) -> str:
    """CNY on the China platform (a `.cn` host), USD on the international one."""
    host = (urlsplit(base_url).hostname or "").lower()
    return "CNY" if host.endswith(".cn") else "USD"


class SiliconFlowProvider(
    Provider,
    name=NAME,
    base_url="https://api.siliconflow.com",
    experimental=True,
    key="API key (cloud.siliconflow.com > API keys, or .cn with base_url https://api.siliconflow.cn)",
    env="SILICONFLOW_API_KEY",
):
    """Total balance (granted plus paid) of a SiliconFlow account."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read the user info; the body has no currency, so it comes from the host or the account setting."""
        try:
            body = await request.http.get_json(request.url("/v1/user/info"), headers=request.bearer())
        except AuthError as exc:
            raise AuthError(
                f"{exc.message}. Check {request.key_source} ({KEY_PLACE})", status=exc.status
            ) from None
        return parse_user_info(
            body, request.currency or host_currency(request.base_url), secrets=request.http.secrets
        )


def parse_user_info(body: Any, currency: str, secrets: tuple[str, ...] = ()) -> ProviderReport:
    """Report from a `/v1/user/info` body: success is `code` 20000 with `status` true, anything else an error."""
    if not isinstance(body, dict):
        raise BadResponseError("siliconflow response is not an object")
    code = body.get("code")
    if isinstance(code, bool) or code != SUCCESS_CODE or body.get("status") is not True:
        codes = f"code {str(code)[:20]!r}, status {str(body.get('status'))[:20]!r}"
        message = error_message(body, secrets)
        raise BadResponseError(f"siliconflow reported an error: {f'{message} ({codes})' if message else codes}")
    data = require(body, "data", NAME)
    total = Money(amount(require(data, "totalBalance", NAME, "data"), "totalBalance", NAME), currency)
    notes = ["experimental: SiliconFlow's user info is documented thinly"]
    granted, paid = data.get("balance"), data.get("chargeBalance")
    if granted is not None and paid is not None:
        granted_money = Money(amount(granted, "balance", NAME), currency)
        paid_money = Money(amount(paid, "chargeBalance", NAME), currency)
        notes.append(f"granted {granted_money.format()}, paid {paid_money.format()}")
    state = data.get("status")
    if isinstance(state, str) and state and state != "normal":
        notes.append(f"SiliconFlow says the account is {state[:40]!r}")
    return ProviderReport(
        currency=currency,
        balance=total,
        balance_source=BalanceSource.REPORTED,
        balances=(total,),
        notes=tuple(notes),
    )
