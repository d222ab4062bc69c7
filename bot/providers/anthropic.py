"""Anthropic: spend from the Admin cost report (`/v1/organizations/cost_report`); no balance endpoint."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from bot.breakdown import BreakdownReport
from bot.models import ProviderReport
from bot.providers.base import (
    AuthError,
    FetchRequest,
    Provider,
    cursor_pages,
    expect_list,
    require,
)
from bot.providers.breakdown_anthropic import (
    DIMENSIONS,
    admin_headers,
    bucket_day,
    dollars,
    fetch_anthropic_breakdown,
)
from bot.providers.spend import cost_report

ADMIN_KEY_HELP = (
    "anthropic needs an Admin API key (sk-ant-admin01-...) of an organization: create one in the "
    "Console under Settings > Admin keys; ordinary and workspace keys cannot read costs"
)
PRIORITY_TIER_NOTE = "Anthropic's cost report leaves out Priority Tier costs: spend shown may be lower"


class AnthropicProvider(
    Provider,
    name="anthropic",
    base_url="https://api.anthropic.com",
    spend_only=True,
    key="Admin API key (sk-ant-admin..., console.anthropic.com > Settings > Admin keys)",
    env="ANTHROPIC_ADMIN_KEY",
    breakdowns=DIMENSIONS,
):
    """Month-to-date and daily spend of an Anthropic organization."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read daily cost buckets from `request.since` on, page by page."""
        headers = admin_headers(request)
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
            raise _refused(exc, request) from None
        return cost_report(
            self.name,
            by_day,
            "USD",
            request.since,
            today,
            today_reported=today in spent_days,
            notes=(PRIORITY_TIER_NOTE,),
        )

    async def fetch_breakdown(self, request: FetchRequest, until: date) -> BreakdownReport:
        """Money by model, workspace and line, tokens by model and key (`bot.providers.breakdown_anthropic`)."""
        try:
            return await fetch_anthropic_breakdown(request, until)
        except AuthError as exc:
            raise _refused(exc, request) from None


def _refused(exc: AuthError, request: FetchRequest) -> AuthError:
    """A refused key's error with the hint that an Admin API key is needed."""
    return AuthError(f"{exc.message}. {ADMIN_KEY_HELP} (the key is {request.key_source})", status=exc.status)


def _read_page(body: Any, by_day: dict[date, Decimal], spent_days: set[date]) -> None:
    for bucket in expect_list(require(body, "data", "anthropic"), "cost report 'data'", "anthropic"):
        day = bucket_day(require(bucket, "starting_at", "anthropic", "cost bucket"))
        by_day[day] += Decimal(0)  # an empty bucket still proves the day was covered
        for result in expect_list(bucket.get("results", []), "cost bucket 'results'", "anthropic"):
            spent_days.add(day)
            by_day[day] += dollars(result)
