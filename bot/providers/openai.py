"""OpenAI: spend from the Admin Costs API (`/v1/organization/costs`); OpenAI exposes no balance."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from bot.breakdown import BreakdownReport
from bot.models import ProviderReport
from bot.providers.base import (
    AuthError,
    BadResponseError,
    FetchRequest,
    Provider,
    amount,
    currency_code,
    cursor_pages,
    expect_list,
    require,
)
from bot.providers.breakdown_openai import DIMENSIONS, bucket_day, fetch_openai_breakdown
from bot.providers.spend import cost_report

ADMIN_KEY_HELP = (
    "openai needs an admin key (sk-admin-...) with api.usage.read: create one under "
    "Organization settings > Admin keys; project keys (sk-proj-...) cannot read costs"
)


class OpenAIProvider(
    Provider,
    name="openai",
    base_url="https://api.openai.com",
    spend_only=True,
    key="Admin key (sk-admin-..., platform.openai.com > Organization > Admin keys)",
    env="OPENAI_ADMIN_KEY",
    breakdowns=DIMENSIONS,
):
    """Month-to-date and daily spend of an OpenAI organization."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read daily cost buckets from `request.since` until now."""
        start = datetime.combine(request.since, time(0), tzinfo=UTC)
        # A future end_time makes the API fail, so the window ends at the request's "now".
        params: dict[str, Any] = {
            "start_time": int(start.timestamp()),
            "end_time": int(request.now.timestamp()),
            "bucket_width": "1d",
            "limit": 180,
        }
        by_day: dict[date, Decimal] = defaultdict(Decimal)
        currencies: set[str] = set()
        spent_days: set[date] = set()
        try:
            async for body in cursor_pages(request, "/v1/organization/costs", request.bearer(), params, self.name):
                _read_page(body, by_day, currencies, spent_days)
        except AuthError as exc:
            raise _refused(exc, request) from None
        # No bucket means no currency either: cost_report still turns an empty answer down.
        if len(currencies) > 1:
            raise BadResponseError(f"openai reported costs in several currencies: {sorted(currencies)}")
        currency = currencies.pop() if currencies else "USD"
        today = request.now.date()
        # Today's bucket is empty while OpenAI's data lags: unknown until it holds a cost.
        return cost_report(self.name, by_day, currency, request.since, today, today_reported=today in spent_days)

    async def fetch_breakdown(self, request: FetchRequest, until: date) -> BreakdownReport:
        """Money by model, project and line item, tokens by model and key (`bot.providers.breakdown_openai`)."""
        try:
            return await fetch_openai_breakdown(request, until)
        except AuthError as exc:
            raise _refused(exc, request) from None


def _refused(exc: AuthError, request: FetchRequest) -> AuthError:
    """A refused key's error with the hint that an admin key is needed."""
    if "scope" in exc.message.lower():
        return AuthError(f"{ADMIN_KEY_HELP} (the key is {request.key_source})", status=exc.status)
    return AuthError(f"{exc.message}. {ADMIN_KEY_HELP} (the key is {request.key_source})", status=exc.status)


def _read_page(body: Any, by_day: dict[date, Decimal], currencies: set[str], spent_days: set[date]) -> None:
    buckets = expect_list(require(body, "data", "openai"), "costs 'data'", "openai")
    for bucket in buckets:
        day = bucket_day(require(bucket, "start_time", "openai", "cost bucket"), "openai cost bucket")
        by_day[day] += Decimal(0)  # an empty bucket still proves the day was covered
        # The first published spec called the array "result"; everything since says "results".
        results = bucket.get("results", bucket.get("result"))
        for result in expect_list(results, "cost bucket 'results'", "openai"):
            spent_days.add(day)
            money = require(result, "amount", "openai", "cost result")
            by_day[day] += amount(require(money, "value", "openai", "cost amount"), "amount.value", "openai")
            currencies.add(currency_code(money.get("currency", "usd"), "amount.currency", "openai"))
