"""OpenAI legacy dashboard (experimental): prepaid grants balance with a browser session key (`sess-...`)."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.models import BalanceSource, DailySpend, Grant, ProviderReport
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
from bot.providers.spend import daily_series, month_to_date, spent_on

log = logging.getLogger(__name__)

CENTS = Decimal(100)
USAGE_WINDOW_DAYS = 100  # the dashboard answers at most about 100 days per usage call
SESSION_KEY_HELP = (
    "openai-legacy reads the old billing dashboard, which since 2023 accepts only a browser session key "
    "(sess-...), not an API key: sign in at platform.openai.com, copy the 'sess-' bearer from the browser's "
    "network tab into {source}, or use provider 'openai' with an admin key instead"
)
EXPIRED_HELP = (
    "the session key was refused; session keys expire within days: copy a fresh 'sess-' key from "
    "platform.openai.com into {source}"
)


class OpenAILegacyProvider(
    Provider,
    name="openai-legacy",
    base_url="https://api.openai.com",
    experimental=True,
    granted=True,
    reports="credit grants",
    key="browser session key (sess-..., from platform.openai.com's network requests; expires within days)",
    env="OPENAI_SESSION_KEY",
):
    """Remaining prepaid credit grants from the undocumented OpenAI billing dashboard."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read grants (required) and usage and subscription (extra information) at once."""
        grants_result, usage_result, subscription_result = await settle(
            self._get(request, "/dashboard/billing/credit_grants", None),
            self._usage(request),
            self._subscription(request),
        )
        if isinstance(grants_result, ProviderError):
            raise grants_result
        usage_series = () if isinstance(usage_result, ProviderError) else usage_result
        subscription = None if isinstance(subscription_result, ProviderError) else subscription_result
        report = parse_credit_grants(grants_result)
        today = request.now.date()
        notes = list(report.notes)
        if subscription is not None:
            notes.append(f"hard limit {subscription.format()} per month")
        return replace(
            report,
            daily_spend=usage_series,
            spent_today=spent_on(usage_series, today) if usage_series else None,
            spent_month=month_to_date(usage_series, today) if usage_series else None,
            notes=tuple(notes),
        )

    async def _get(self, request: FetchRequest, path: str, params: dict[str, str] | None) -> Any:
        try:
            return await request.http.get_json(request.url(path), headers=request.bearer(), params=params)
        except ProviderError as exc:
            if "session key" in exc.message.lower():
                raise AuthError(SESSION_KEY_HELP.format(source=request.key_source), status=exc.status) from None
            if isinstance(exc, AuthError):
                expired = EXPIRED_HELP.format(source=request.key_source)
                raise AuthError(f"{exc.message}; {expired}", status=exc.status) from None
            raise

    async def _usage(self, request: FetchRequest) -> tuple[DailySpend, ...]:
        """Daily spend since `request.since`, or nothing when the usage endpoint cannot be read."""
        today = request.now.date()
        by_day: dict[date, Decimal] = defaultdict(Decimal)
        start = request.since
        try:
            while start <= today:
                end = min(start + timedelta(days=USAGE_WINDOW_DAYS), today + timedelta(days=1))
                body = await self._get(
                    request,
                    "/dashboard/billing/usage",
                    {"start_date": start.isoformat(), "end_date": end.isoformat()},
                )
                _read_usage(body, by_day)
                start = end
        except ProviderError as exc:  # extra information only: the balance stands without it
            log.info("openai-legacy usage unavailable: %s", exc)
            return ()
        return daily_series(by_day, "USD", request.since, today)

    async def _subscription(self, request: FetchRequest) -> Money | None:
        try:
            body = await self._get(request, "/dashboard/billing/subscription", None)
            return Money(
                amount(require(body, "hard_limit_usd", "openai-legacy"), "hard_limit_usd", "openai-legacy"),
                "USD",
            )
        except ProviderError as exc:  # extra information only
            log.info("openai-legacy subscription unavailable: %s", exc)
            return None


def parse_credit_grants(body: Any) -> ProviderReport:
    """Report from a `credit_grants` body: dollars as floats, timestamps as float Unix seconds."""
    if isinstance(body, dict) and body.get("object", "credit_summary") != "credit_summary":
        raise BadResponseError(
            f"openai-legacy credit_grants is a {str(body.get('object'))[:40]!r}, not a credit_summary"
        )
    available = amount(require(body, "total_available", "openai-legacy"), "total_available", "openai-legacy")
    if available < 0:
        raise BadResponseError("openai-legacy reported a negative total_available")
    balance = Money(available, "USD")
    granted_raw = body.get("total_granted")
    granted = None if granted_raw is None else Money(amount(granted_raw, "total_granted", "openai-legacy"), "USD")
    grants: list[Grant] = []
    grants_obj = body.get("grants")
    data = grants_obj.get("data", []) if isinstance(grants_obj, dict) else []
    for item in expect_list(data, "grants", "openai-legacy"):
        expires = item.get("expires_at") if isinstance(item, dict) else None
        grants.append(
            Grant(
                granted=Money(
                    amount(
                        require(item, "grant_amount", "openai-legacy", "grant"),
                        "grant_amount",
                        "openai-legacy",
                    ),
                    "USD",
                ),
                used=Money(amount(item.get("used_amount", 0), "used_amount", "openai-legacy"), "USD"),
                expires_at=_timestamp(expires),
            )
        )
    notes = ["experimental: read from the undocumented billing dashboard with a session key"]
    if available == 0 and (granted is None or granted.amount == 0) and not grants:
        # Grants only cover promotional credit: a funded pay-as-you-go account shows 0 here.
        notes.append("no credit grants: the dashboard shows 0, which says nothing about pay-as-you-go funds")
        return ProviderReport(currency="USD", notes=tuple(notes))
    return ProviderReport(
        currency="USD",
        balance=balance,
        balance_source=BalanceSource.REPORTED,
        balances=(balance,),
        granted_total=granted,
        grants=tuple(grants),
        notes=tuple(notes),
    )


def _timestamp(value: Any) -> datetime | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _read_usage(body: Any, by_day: dict[date, Decimal]) -> None:
    # total_usage and line item costs are in cents.
    for entry in expect_list(
        require(body, "daily_costs", "openai-legacy", "usage"), "daily_costs", "openai-legacy"
    ):
        when = _timestamp(require(entry, "timestamp", "openai-legacy", "daily cost"))
        if when is None:
            raise BadResponseError("openai-legacy daily cost has an unreadable timestamp")
        items = expect_list(entry.get("line_items", []), "line_items", "openai-legacy")
        by_day[when.date()] += (
            sum(
                (
                    amount(item.get("cost", 0) if isinstance(item, dict) else item, "cost", "openai-legacy")
                    for item in items
                ),
                Decimal(0),
            )
            / CENTS
        )
