"""What the breakdowns of OpenAI, Anthropic and OpenRouter share: parts summed per day, dimension and key while
pages are read, counts and labels checked, every page of a report, paged name lists, all sources at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from bot.breakdown import BreakdownPart, BreakdownReport, Dimension
from bot.providers.base import MAX_PAGES, BadResponseError, FetchRequest, cursor_pages, expect_list, require

NO_KEY = ("none", "no API key")  # usage made without an API key (the playground, the console): key and label


@dataclass
class Entry:
    """The running sums of one part while pages are read."""

    label: str
    cost: Decimal | None = None
    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    requests: int | None = None


def plus(total: int | None, value: int | None) -> int | None:
    """Add a count that may be unknown: unknown only while every addend is."""
    if value is None:
        return total
    return (total or 0) + value


class Tally:
    """Parts summed per (UTC day, dimension, key) over every result and page of a day."""

    def __init__(self) -> None:
        self.entries: dict[tuple[date, Dimension, str], Entry] = {}

    def entry(self, day: date, dimension: Dimension, key: str, label: str) -> Entry:
        """The entry of one part, made on first use."""
        return self.entries.setdefault((day, dimension, key), Entry(label))

    def add_cost(self, day: date, dimension: Dimension, key: str, label: str, cost: Decimal) -> None:
        """Add money to a part."""
        entry = self.entry(day, dimension, key, label)
        entry.cost = (entry.cost or Decimal(0)) + cost

    def add_usage(
        self,
        day: date,
        dimension: Dimension,
        key: str,
        label: str,
        *,
        input_tokens: int | None,
        cached_input_tokens: int | None,
        output_tokens: int | None,
        requests: int | None,
    ) -> None:
        """Add token and request counts to a part."""
        entry = self.entry(day, dimension, key, label)
        entry.input_tokens = plus(entry.input_tokens, input_tokens)
        entry.cached_input_tokens = plus(entry.cached_input_tokens, cached_input_tokens)
        entry.output_tokens = plus(entry.output_tokens, output_tokens)
        entry.requests = plus(entry.requests, requests)

    def parts(self, days: Iterable[date]) -> tuple[BreakdownPart, ...]:
        """The parts of the covered `days`, in a stable order; parts of other days are left out."""
        covered = set(days)
        return tuple(
            BreakdownPart(
                day,
                dimension,
                key,
                e.label,
                e.cost,
                e.input_tokens,
                e.cached_input_tokens,
                e.output_tokens,
                e.requests,
            )
            for (day, dimension, key), e in sorted(self.entries.items(), key=lambda item: item[0])
            if day in covered
        )


def day_span(first: date, last: date) -> list[date]:
    """Every UTC day from `first` to `last` inclusive."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def empty_report(dimensions: Iterable[Dimension], currency: str = "USD") -> BreakdownReport:
    """A breakdown that covers no day (nothing was asked for)."""
    return BreakdownReport(currency, (), (), frozenset(dimensions))


def count(result: Any, name: str, provider: str, *, optional: bool = False) -> int | None:
    """A token or request count of a usage result; a missing optional one is unknown (None)."""
    value = result.get(name) if isinstance(result, dict) else None
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadResponseError(f"{provider} usage result has no count '{name}' (got {str(value)[:20]!r})")
    return value


def label_of(value: Any, field: str, provider: str) -> str | None:
    """A grouped dimension's value: a non-empty string, None when null, else a BadResponseError."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadResponseError(f"{provider} result has a non-text '{field}'")
    return value


UsageCounts = tuple[int | None, int | None, int | None, int | None]  # input, cached input, output, requests


def tally_usage(
    tally: Tally,
    dated_results: Iterable[tuple[date, list[Any]]],
    field: str,
    dimension: Dimension,
    counts: Callable[[Any], UsageCounts],
    provider: str,
) -> set[date]:
    """Add the counts of a usage report grouped by `field` (a model, an API key) to the tally; the days it has
    buckets for."""
    days: set[date] = set()
    for day, results in dated_results:
        days.add(day)
        for result in results:
            value = label_of(result.get(field) if isinstance(result, dict) else None, field, provider)
            if value is None and dimension is Dimension.MODEL:
                continue  # tokens of no model cannot join a model's part
            # A null key is usage made without one (the playground, the Workbench, the console).
            key, label = NO_KEY if value is None else (value, value)
            input_tokens, cached, output_tokens, requests = counts(result)
            tally.add_usage(
                day,
                dimension,
                key,
                label,
                input_tokens=input_tokens,
                cached_input_tokens=cached,
                output_tokens=output_tokens,
                requests=requests,
            )
    return days


async def gather_all(*calls: Awaitable[Any]) -> list[Any]:
    """Run the requests at once and wait for all of them; raise the first ProviderError, if any, since a
    breakdown missing one of its sources must not be stored as complete."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)


async def all_pages(
    request: FetchRequest, path: str, headers: Mapping[str, str], params: Mapping[str, Any], provider: str
) -> list[Any]:
    """Every page of a `has_more`/`next_page` report."""
    return [body async for body in cursor_pages(request, path, headers, params, provider)]


async def names(
    request: FetchRequest,
    path: str,
    headers: Mapping[str, str],
    params: Mapping[str, Any],
    *,
    cursor: str,
    provider: str,
) -> dict[str, str]:
    """Id -> name from a list paged by `has_more` and `last_id` (sent back as `cursor`)."""
    query = dict(params)
    found: dict[str, str] = {}
    seen: set[str] = set()
    for _page in range(MAX_PAGES):
        body = await request.http.get_json(request.url(path), headers=headers, params=query)
        for item in expect_list(require(body, "data", provider, path), f"{path} 'data'", provider):
            ident = label_of(require(item, "id", provider, f"{path} item"), "id", provider)
            name = item.get("name")
            if ident is not None:
                found[ident] = name if isinstance(name, str) and name.strip() else ident
        if body.get("has_more") is not True:
            return found
        last = body.get("last_id")
        if not isinstance(last, str) or not last or last in seen:
            raise BadResponseError(f"{provider} {path} said more items follow but gave no usable last_id")
        seen.add(last)
        query[cursor] = last
    raise BadResponseError(f"{provider} {path} needed more than {MAX_PAGES} pages")
