"""Anthropic's breakdown: money by model, line (description) and workspace from the cost report, tokens by
model and API key from the messages usage report, workspace names from the workspaces list (admin key)."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.breakdown import BreakdownReport, Dimension
from bot.providers.base import (
    BadResponseError,
    FetchRequest,
    amount,
    currency_code,
    expect_list,
    require,
)
from bot.providers.breakdown_tally import (
    Tally,
    UsageCounts,
    all_pages,
    count,
    day_span,
    empty_report,
    gather_all,
    tally_usage,
)
from bot.providers.breakdown_tally import label_of as text_of
from bot.providers.breakdown_tally import names as paged_names

PROVIDER = "anthropic"
API_VERSION = "2023-06-01"
DIMENSIONS = (Dimension.MODEL, Dimension.PROJECT, Dimension.LINE_ITEM, Dimension.KEY)
COST_REPORT = "/v1/organizations/cost_report"
USAGE_REPORT = "/v1/organizations/usage_report/messages"
WORKSPACES = "/v1/organizations/workspaces"
PAGE_LIMIT = 31  # the most daily buckets either report gives per page
CENTS = Decimal(100)
DEFAULT_WORKSPACE = ("default", "Default workspace")  # a null workspace_id is the organization's default one
# Archived workspaces keep their costs in the history, so their names are wanted too.
WORKSPACE_PARAMS = {"limit": 100, "include_archived": "true"}


def admin_headers(request: FetchRequest) -> dict[str, str]:
    """The headers of Anthropic's Admin API."""
    return {
        "x-api-key": request.api_key.get_secret_value(),
        "anthropic-version": API_VERSION,
        "Accept": "application/json",
    }


def bucket_day(value: Any, what: str = "anthropic cost bucket") -> date:
    """The UTC day of a bucket from its RFC 3339 `starting_at`."""
    if not isinstance(value, str):
        raise BadResponseError(f"{what} has no starting_at timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadResponseError(f"{what} has an unreadable starting_at: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).date()


def dollars(result: Any) -> Decimal:
    """The USD amount of one cost result: a decimal string in cents, so "123.78912" is $1.2378912."""
    cents = require(result, "amount", PROVIDER, "cost result")
    currency = currency_code(result.get("currency", "USD"), "currency", PROVIDER)
    if currency != "USD":
        raise BadResponseError(f"anthropic reported a cost in {currency}; only USD is known")
    # Cents to dollars adds two decimals: kept to the twelve the store holds.
    return (amount(cents, "amount", PROVIDER) / CENTS).quantize(Decimal("1e-12"))


def buckets(bodies: Iterable[Any], what: str) -> Iterator[tuple[date, list[Any]]]:
    """(day, results) of every bucket of every page of an Anthropic report."""
    for body in bodies:
        for bucket in expect_list(require(body, "data", PROVIDER, what), f"{what} 'data'", PROVIDER):
            day = bucket_day(
                require(bucket, "starting_at", PROVIDER, f"{what} bucket"), f"anthropic {what} bucket"
            )
            yield day, expect_list(bucket.get("results", []), f"{what} bucket 'results'", PROVIDER)


def input_tokens(result: Any) -> int | None:
    """Input as Anthropic counts it in total: uncached, read from cache and written to cache."""
    total = count(result, "uncached_input_tokens", PROVIDER)
    assert total is not None  # a required count
    total += count(result, "cache_read_input_tokens", PROVIDER, optional=True) or 0
    creation = result.get("cache_creation")
    if creation is not None:
        if not isinstance(creation, dict):
            raise BadResponseError("anthropic usage result has a 'cache_creation' that is not an object")
        for name in ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"):
            total += count(creation, name, PROVIDER, optional=True) or 0
    return total


def usage_counts(result: Any) -> UsageCounts:
    """Input (all of it), cached input, output and requests (never counted) of one messages usage result."""
    return (
        input_tokens(result),
        count(result, "cache_read_input_tokens", PROVIDER, optional=True),
        count(result, "output_tokens", PROVIDER),
        None,
    )


async def fetch_anthropic_breakdown(request: FetchRequest, until: date) -> BreakdownReport:
    """Anthropic's breakdown of `request.since` to `until` by model, workspace, description and API key."""
    today = request.now.date()
    last = min(until, today)
    if last < request.since:
        return empty_report(DIMENSIONS)
    window = {
        "starting_at": f"{request.since.isoformat()}T00:00:00Z",
        # Without ending_at the report ends at 00:00 UTC today, and today's bucket would never come.
        "ending_at": f"{(last + timedelta(days=1)).isoformat()}T00:00:00Z",
        "bucket_width": "1d",
        "limit": PAGE_LIMIT,
    }
    headers = admin_headers(request)

    def report(path: str, group_by: str | None) -> Awaitable[list[Any]]:
        grouping = {"group_by[]": group_by} if group_by else {}
        return all_pages(request, path, headers, {**window, **grouping}, PROVIDER)

    ungrouped, by_description, by_workspace, by_model, by_key, workspace_names = await gather_all(
        report(COST_REPORT, None),  # the day's spend, which the parts must add up to
        report(COST_REPORT, "description"),
        report(COST_REPORT, "workspace_id"),
        report(USAGE_REPORT, "model"),
        report(USAGE_REPORT, "api_key_id"),
        paged_names(request, WORKSPACES, headers, WORKSPACE_PARAMS, cursor="after_id", provider=PROVIDER),
    )
    tally = Tally()
    seen: list[set[date]] = []
    reported: set[date] = set()  # days whose description costs hold anything

    totals: dict[date, Decimal] = {}
    days: set[date] = set()
    for day, results in buckets(ungrouped, "cost report"):
        days.add(day)
        totals[day] = totals.get(day, Decimal(0)) + sum((dollars(r) for r in results), Decimal(0))
    seen.append(days)

    days = set()
    for day, results in buckets(by_description, "cost report"):
        days.add(day)
        for result in results:
            reported.add(day)
            cost = dollars(result)
            description = text_of(result.get("description"), "description", PROVIDER)
            if description is None:
                continue  # not attributable to a line: the reconciliation shows it as unattributed
            tally.add_cost(day, Dimension.LINE_ITEM, description, description, cost)
            # Costs of no model (web search, code execution) are named by their description instead.
            model = text_of(result.get("model"), "model", PROVIDER) or description
            tally.add_cost(day, Dimension.MODEL, model, model, cost)
    seen.append(days)

    days = set()
    for day, results in buckets(by_workspace, "cost report"):
        days.add(day)
        for result in results:
            cost = dollars(result)
            workspace = text_of(result.get("workspace_id"), "workspace_id", PROVIDER)
            key, label = (
                DEFAULT_WORKSPACE if workspace is None else (workspace, workspace_names.get(workspace, workspace))
            )
            tally.add_cost(day, Dimension.PROJECT, key, label, cost)
    seen.append(days)

    for bodies, field, dimension in ((by_model, "model", Dimension.MODEL), (by_key, "api_key_id", Dimension.KEY)):
        seen.append(tally_usage(tally, buckets(bodies, "usage report"), field, dimension, usage_counts, PROVIDER))

    # A day counts as covered when every source has its bucket; today only once it holds a cost, since an
    # empty current-day bucket means the data lags (unknown), not that nothing was spent.
    covered = tuple(
        day
        for day in day_span(request.since, last)
        if all(day in days for days in seen) and (day < today or day in reported)
    )
    return BreakdownReport(
        "USD", covered, tally.parts(covered), frozenset(DIMENSIONS), {day: totals[day] for day in covered}
    )
