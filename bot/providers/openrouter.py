"""OpenRouter: account balance from `/api/v1/credits` (management key), else the key's own limit."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from bot.breakdown import BreakdownReport
from bot.models import BalanceSource, DailySpend, ProviderReport
from bot.money import Money
from bot.providers.base import (
    AuthError,
    BadResponseError,
    FetchRequest,
    Provider,
    ProviderError,
    amount,
    expect_list,
    require,
    settle,
)
from bot.providers.breakdown_openrouter import (
    DIMENSIONS,
    MANAGEMENT_KEY_HELP,
    WINDOW_DAYS,
    fetch_openrouter_breakdown,
)
from bot.providers.spend import daily_series, month_to_date, reported_through, spent_on

log = logging.getLogger(__name__)

KEY_LIMIT_NOTE = "key limit, not the account balance: use a management key to see the account balance"


class OpenRouterProvider(
    Provider,
    name="openrouter",
    base_url="https://openrouter.ai",
    granted=True,
    key="management key for the balance (openrouter.ai > Settings > Management keys); an API key gives its limit",
    env="OPENROUTER_API_KEY",
    breakdowns=DIMENSIONS,
    breakdown_reach_days=WINDOW_DAYS,
):
    """Credits left on an OpenRouter account, or on one key when the account total is out of reach."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Ask `/credits` and `/key` at once; fall back to the key's limit when `/credits` can't answer."""
        credits_result, key_result = await settle(
            self._get(request, "/api/v1/credits"), self._get(request, "/api/v1/key")
        )
        key: dict[str, Any] | None = None
        key_problem = "no key details"
        try:
            if isinstance(key_result, ProviderError):
                raise key_result
            key = _key_data(key_result)
        except ProviderError as exc:
            key_problem = exc.message

        if isinstance(credits_result, ProviderError):
            # OpenRouter refuses /credits to keys that are not management keys (403, or the message says so).
            refused = isinstance(credits_result, AuthError) and credits_result.status == 403
            if key is not None and (refused or "management key" in credits_result.message.lower()):
                return _key_limit_report(key)
            raise credits_result

        total_credits, total_usage = _credit_totals(credits_result)
        is_management = bool(key and (key.get("is_management_key") or key.get("is_provisioning_key")))
        if total_credits == 0 and total_usage == 0 and not is_management:
            # OpenRouter answers zeros to ordinary keys, even for funded accounts: never report that as $0.
            if key is None:
                raise BadResponseError(
                    "openrouter /credits answered zeros, which it does for keys that are not management keys, "
                    f"and /key could not be read ({key_problem})"
                )
            return _key_limit_report(key)

        balance = Money(total_credits - total_usage, "USD")
        series: tuple[DailySpend, ...] = ()
        notes: list[str] = []
        if is_management:
            series = await self._activity_series(request)
        elif key is not None:
            notes.append("spend shown is this key's usage")
        today = request.now.date()
        report = ProviderReport(
            currency="USD",
            balance=balance,
            balance_source=BalanceSource.REPORTED,
            balances=(balance,),
            granted_total=Money(total_credits, "USD"),
            daily_spend=series,
            notes=tuple(notes),
        )
        if series:
            return replace(
                report,
                spent_today=spent_on(series, today),
                spent_month=month_to_date(series, today),
                spent_month_through=reported_through(series, today),
            )
        if key is not None and not is_management:
            spent_today, spent_month = _key_usage(key)
            return replace(report, spent_today=spent_today, spent_month=spent_month)
        return report

    async def fetch_breakdown(self, request: FetchRequest, until: date) -> BreakdownReport:
        """Money, tokens and requests by model from the activity rows (`bot.providers.breakdown_openrouter`)."""
        try:
            return await fetch_openrouter_breakdown(request, until)
        except AuthError as exc:
            raise AuthError(
                f"{exc.message}. {MANAGEMENT_KEY_HELP} (the key is {request.key_source})", status=exc.status
            ) from None

    async def _get(self, request: FetchRequest, path: str) -> Any:
        return await request.http.get_json(request.url(path), headers=request.bearer())

    async def _activity_series(self, request: FetchRequest) -> tuple[DailySpend, ...]:
        """Daily spend from `/api/v1/activity` (management keys); optional, so failures are only logged.

        The activity has rows only for days with usage, over the last 30 completed UTC days: a day of that
        window without rows spent nothing, a day before it is unknown. Today comes from `?date=` when the
        endpoint has rows for it, and is unknown otherwise.
        """
        today = request.now.date()
        try:
            completed, so_far = await settle(
                self._get(request, "/api/v1/activity"), self._get(request, f"/api/v1/activity?date={today}")
            )
            if isinstance(completed, ProviderError):
                raise completed
            by_day = _activity_by_day(completed)
        except (ProviderError, ValueError) as exc:
            log.info("openrouter activity unavailable, burn rate will come from balance history: %s", exc)
            return ()
        window_start = max(today - timedelta(days=WINDOW_DAYS), request.since)
        series = daily_series(by_day, "USD", window_start, today - timedelta(days=1))
        try:
            today_rows = {} if isinstance(so_far, ProviderError) else _activity_by_day(so_far)
        except (ProviderError, ValueError):
            today_rows = {}
        if today in today_rows:
            series += (DailySpend(today, Money(today_rows[today], "USD")),)
        return series


def _activity_by_day(body: Any) -> dict[date, Decimal]:
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for row in expect_list(require(body, "data", "openrouter", "activity"), "activity", "openrouter"):
        day_text = str(require(row, "date", "openrouter", "activity row"))[:10]
        by_day[date.fromisoformat(day_text)] += amount(row.get("usage", 0), "activity usage", "openrouter")
    return by_day


def _credit_totals(body: Any) -> tuple[Decimal, Decimal]:
    # Non-management keys have been seen to get the totals with and without the "data" wrapper.
    data = body.get("data", body) if isinstance(body, dict) else body
    total_credits = amount(require(data, "total_credits", "openrouter", "credits"), "total_credits", "openrouter")
    total_usage = amount(require(data, "total_usage", "openrouter", "credits"), "total_usage", "openrouter")
    return total_credits, total_usage


def _key_data(body: Any) -> dict[str, Any]:
    data = require(body, "data", "openrouter", "key")
    if not isinstance(data, dict):
        raise BadResponseError("openrouter /key 'data' is not an object")
    return data


def _key_usage(key: dict[str, Any]) -> tuple[Money | None, Money | None]:
    def optional(field: str) -> Money | None:
        value = key.get(field)
        return None if value is None else Money(amount(value, field, "openrouter"), "USD")

    return optional("usage_daily"), optional("usage_monthly")


def _key_limit_report(key: dict[str, Any]) -> ProviderReport:
    remaining = key.get("limit_remaining")
    notes = [KEY_LIMIT_NOTE]
    balance: Money | None = None
    if remaining is None:
        notes.append("this key has no spending limit, so there is no key balance to show")
    else:
        balance = Money(amount(remaining, "limit_remaining", "openrouter"), "USD")
    limit = key.get("limit")
    spent_today, spent_month = _key_usage(key)
    return ProviderReport(
        currency="USD",
        balance=balance,
        balance_source=BalanceSource.KEY_LIMIT if balance is not None else None,
        balances=(balance,) if balance is not None else (),
        spent_today=spent_today,
        spent_month=spent_month,
        granted_total=None if limit is None else Money(amount(limit, "limit", "openrouter"), "USD"),
        notes=tuple(notes),
    )
