"""Any endpoint that answers JSON (`provider = "http-json"`): a balance, and optionally the month's spend and an
error flag, read at RFC 6901 JSON Pointers configured in TOML, scaled, in the configured currency or unit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import jsonpointer

from bot.models import BalanceSource, JsonSource, ProviderReport
from bot.money import Money
from bot.providers.base import AuthError, BadResponseError, FetchRequest, Provider, amount
from bot.text import one_line

NAME = "http-json"


class HttpJsonProvider(
    Provider,
    name=NAME,
    base_url="",
    key="none: put secrets in `headers` (values may use ${VAR})",
):
    """A balance read from any JSON answer, where the configuration says it is."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """GET the configured URL with its headers and read the configured pointers."""
        source = request.json_source
        if source is None or request.currency is None:
            raise BadResponseError("http-json needs url, balance and currency in its [[accounts]] table")
        headers = {"Accept": "application/json", **{k: v.get_secret_value() for k, v in source.headers}}
        try:
            body = await request.http.get_json(source.url, headers=headers)
        except AuthError as exc:
            raise AuthError(f"{exc.message}. Check {request.key_source}", status=exc.status) from None
        return parse_answer(body, source, request.currency)


def parse_answer(body: Any, source: JsonSource, currency: str) -> ProviderReport:
    """The report from one answer: an error at the `error` pointer wins; the balance must resolve."""
    if source.error is not None:
        flagged = _resolve(body, source.error, required=False)
        if flagged not in (None, False, 0, "", [], {}):
            detail = one_line(flagged, limit=200) if isinstance(flagged, str) else f"see {source.error}"
            raise BadResponseError(f"{NAME} source reports an error: {detail}")
    balance = Money(_number(body, source.balance, "balance") * source.scale, currency)
    spent = None
    if source.spent_month is not None:
        spent = Money(_number(body, source.spent_month, "spent_month") * source.scale, currency)
    return ProviderReport(
        currency=currency,
        balance=balance,
        balance_source=BalanceSource.REPORTED,
        balances=(balance,),
        spent_month=spent,
    )


def _resolve(body: Any, pointer: str, *, required: bool) -> Any:
    try:
        return jsonpointer.resolve_pointer(body, pointer)
    except jsonpointer.JsonPointerException:
        if not required:
            return None
        raise BadResponseError(f"{NAME} answer has nothing at {pointer}") from None


def _number(body: Any, pointer: str, field: str) -> Decimal:
    value = _resolve(body, pointer, required=True)
    if isinstance(value, dict | list):
        raise BadResponseError(f"{NAME} answer has an object or list at {pointer} ({field}), not a number")
    return amount(value, f"the value at {pointer} ({field})", NAME)
