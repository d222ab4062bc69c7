"""Anthropic: spend from the Admin cost report (`/v1/organizations/cost_report`); no balance endpoint."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

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
from bot.providers.spend import cost_report

API_VERSION = "2023-06-01"
ADMIN_KEY_HELP = (
    "anthropic needs an Admin API key (sk-ant-admin01-...) of an organization: create one in the "
    "Console under Settings > Admin keys; ordinary and workspace keys cannot read costs"
)
CENTS = Decimal(100)
PRIORITY_TIER_NOTE = "Anthropic's cost report leaves out Priority Tier costs: spend shown may be lower"


class AnthropicProvider(
    Provider,
    name="anthropic",
    base_url="https://api.anthropic.com",
    spend_only=True,
    key="Admin API key (sk-ant-admin..., console.anthropic.com > Settings > Admin keys)",
    env="ANTHROPIC_ADMIN_KEY",
):
    """Month-to-date and daily spend of an Anthropic organization."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read daily cost buckets from `request.since` on, page by page."""
        headers = {
            "x-api-key": request.api_key.get_secret_value(),
            "anthropic-version": API_VERSION,
            "Accept": "application/json",
        }
        today = request.now.date()
        params: dict[str, Any] = {
            "starting_at": f"{request.since.isoformat()}T00:00:00Z",
            # Without ending_at the report ends at 00:00 UTC today, and today's bucket would never come.
            "ending_at": f"{(today + timedelta(days=1)).isoformat()}T00:00:00Z",
            "bucket_width": "1d",
            "limit": 31,
        }
        by_day: dict[date, Decimal] = defaultdict(Decimal)
        spent_days: set[date] = set()
        try:
            async for body in cursor_pages(request, "/v1/organizations/cost_report", headers, params, self.name):
                _read_page(body, by_day, spent_days)
        except AuthError as exc:
            raise AuthError(
                f"{exc.message}. {ADMIN_KEY_HELP} (the key is {request.key_source})", status=exc.status
            ) from None
        return cost_report(
            self.name,
            by_day,
            "USD",
            request.since,
            today,
            today_reported=today in spent_days,
            notes=(PRIORITY_TIER_NOTE,),
        )


def _bucket_day(value: Any) -> date:
    if not isinstance(value, str):
        raise BadResponseError("anthropic cost bucket has no starting_at timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadResponseError(f"anthropic cost bucket has an unreadable starting_at: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).date()


def _read_page(body: Any, by_day: dict[date, Decimal], spent_days: set[date]) -> None:
    for bucket in expect_list(require(body, "data", "anthropic"), "cost report 'data'", "anthropic"):
        day = _bucket_day(require(bucket, "starting_at", "anthropic", "cost bucket"))
        by_day[day] += Decimal(0)  # an empty bucket still proves the day was covered
        for result in expect_list(bucket.get("results", []), "cost bucket 'results'", "anthropic"):
            spent_days.add(day)
            cents = require(result, "amount", "anthropic", "cost result")
            currency = currency_code(result.get("currency", "USD"), "currency", "anthropic")
            if currency != "USD":
                raise BadResponseError(f"anthropic reported a cost in {currency}; only USD is known")
            # Amounts are decimal strings in cents: "123.78912" is $1.2378912.
            # Cents to dollars adds two decimals: kept to the twelve the store holds.
            by_day[day] += (amount(cents, "amount", "anthropic") / CENTS).quantize(Decimal("1e-12"))
