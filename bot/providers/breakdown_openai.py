"""OpenAI's breakdown: money by line item, model and project from the Costs API, tokens and requests by model
and API key from the completions Usage API, project names from the projects list (all with the admin key)."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
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
    label_of,
    names,
    tally_usage,
)

PROVIDER = "openai"
DIMENSIONS = (Dimension.MODEL, Dimension.PROJECT, Dimension.LINE_ITEM, Dimension.KEY)
COSTS = "/v1/organization/costs"
USAGE = "/v1/organization/usage/completions"
PROJECTS = "/v1/organization/projects"
COSTS_LIMIT = 180  # the most daily buckets the Costs API gives per page
USAGE_LIMIT = 31  # the most daily buckets the Usage API gives per page
# Archived projects keep their costs in the history, so their names are wanted too.
PROJECT_PARAMS = {"limit": 100, "include_archived": "true"}
NO_PROJECT = ("default", "no project")  # costs outside any project: key and label


def bucket_day(start_time: Any, what: str = "openai bucket") -> date:
    """The UTC day of a bucket from its `start_time` in Unix seconds."""
    if isinstance(start_time, bool) or not isinstance(start_time, int | float):
        raise BadResponseError(f"{what} has a non-numeric start_time")
    try:
        return datetime.fromtimestamp(start_time, UTC).date()
    except (OverflowError, OSError, ValueError):
        raise BadResponseError(f"{what} has an impossible start_time") from None


def buckets(bodies: Iterable[Any], what: str) -> Iterator[tuple[date, list[Any]]]:
    """(day, results) of every bucket of every page of an OpenAI organization report."""
    for body in bodies:
        for bucket in expect_list(require(body, "data", PROVIDER, what), f"{what} 'data'", PROVIDER):
            day = bucket_day(require(bucket, "start_time", PROVIDER, f"{what} bucket"), f"openai {what} bucket")
            # The first published spec called the array "result"; everything since says "results".
            results = bucket.get("results", bucket.get("result")) if isinstance(bucket, dict) else None
            yield day, expect_list(results, f"{what} bucket 'results'", PROVIDER)


def cost_of(result: Any, currencies: set[str]) -> Decimal:
    """The USD (or other) amount of one costs result; a result without one is an error, never a zero."""
    money = require(result, "amount", PROVIDER, "cost result")
    value = amount(require(money, "value", PROVIDER, "cost amount"), "amount.value", PROVIDER)
    currencies.add(currency_code(money.get("currency", "usd"), "amount.currency", PROVIDER))
    return value


def usage_counts(result: Any) -> UsageCounts:
    """Input (cached input included), cached input, output and requests of one completions usage result."""
    return (
        count(result, "input_tokens", PROVIDER),
        count(result, "input_cached_tokens", PROVIDER, optional=True),
        count(result, "output_tokens", PROVIDER),
        count(result, "num_model_requests", PROVIDER),
    )


def model_of_line_item(line_item: str) -> str:
    """The model a line item is about: the text before its first comma ("gpt-4o, input" -> "gpt-4o")."""
    return line_item.split(",", 1)[0].strip() or line_item


async def fetch_openai_breakdown(request: FetchRequest, until: date) -> BreakdownReport:
    """OpenAI's breakdown of `request.since` to `until` by model, project, line item and API key."""
    today = request.now.date()
    last = min(until, today)
    start = datetime.combine(request.since, time(0), tzinfo=UTC)
    # A future end_time makes the API fail, so a window reaching today ends at the request's "now".
    end = min(datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC), request.now)
    if last < request.since or end <= start:
        return empty_report(DIMENSIONS)
    window = {"start_time": int(start.timestamp()), "end_time": int(end.timestamp()), "bucket_width": "1d"}
    headers = request.bearer()

    def report(path: str, group_by: str | None, limit: int) -> Awaitable[list[Any]]:
        grouping = {"group_by": group_by} if group_by else {}
        return all_pages(request, path, headers, {**window, **grouping, "limit": limit}, PROVIDER)

    ungrouped, by_line, by_project, by_model, by_key, project_names = await gather_all(
        report(COSTS, None, COSTS_LIMIT),  # the day's spend, which the parts must add up to
        report(COSTS, "line_item", COSTS_LIMIT),
        report(COSTS, "project_id", COSTS_LIMIT),
        report(USAGE, "model", USAGE_LIMIT),
        report(USAGE, "api_key_id", USAGE_LIMIT),
        names(request, PROJECTS, headers, PROJECT_PARAMS, cursor="after", provider=PROVIDER),
    )
    tally = Tally()
    currencies: set[str] = set()
    seen: list[set[date]] = []
    reported: set[date] = set()  # days whose line-item costs hold anything

    totals: dict[date, Decimal] = {}
    days: set[date] = set()
    for day, results in buckets(ungrouped, "costs"):
        days.add(day)
        totals[day] = totals.get(day, Decimal(0)) + sum((cost_of(r, currencies) for r in results), Decimal(0))
    seen.append(days)

    days = set()
    for day, results in buckets(by_line, "costs"):
        days.add(day)
        for result in results:
            reported.add(day)
            cost = cost_of(result, currencies)
            line_item = label_of(result.get("line_item"), "line_item", PROVIDER)
            if line_item is None:
                continue  # not attributable to a line: the reconciliation shows it as unattributed
            tally.add_cost(day, Dimension.LINE_ITEM, line_item, line_item, cost)
            model = model_of_line_item(line_item)
            tally.add_cost(day, Dimension.MODEL, model, model, cost)
    seen.append(days)

    days = set()
    for day, results in buckets(by_project, "costs"):
        days.add(day)
        for result in results:
            cost = cost_of(result, currencies)
            project = label_of(result.get("project_id"), "project_id", PROVIDER)
            key, label = NO_PROJECT if project is None else (project, project_names.get(project, project))
            tally.add_cost(day, Dimension.PROJECT, key, label, cost)
    seen.append(days)

    for bodies, field, dimension in ((by_model, "model", Dimension.MODEL), (by_key, "api_key_id", Dimension.KEY)):
        seen.append(tally_usage(tally, buckets(bodies, "usage"), field, dimension, usage_counts, PROVIDER))

    if len(currencies) > 1:
        raise BadResponseError(f"openai reported costs in several currencies: {sorted(currencies)}")
    # A day counts as covered when every source has its bucket; today only once it holds a cost, since an
    # empty current-day bucket means the data lags (unknown), not that nothing was spent.
    covered = tuple(
        day
        for day in day_span(request.since, last)
        if all(day in days for days in seen) and (day < today or day in reported)
    )
    currency = currencies.pop() if currencies else "USD"
    return BreakdownReport(
        currency, covered, tally.parts(covered), frozenset(DIMENSIONS), {day: totals[day] for day in covered}
    )
