"""Breakdown arithmetic, pure: a window's table that reconciles with the day's spend ("unattributed" holds the
gap), the drivers of one day against their median, and the top entries per day for a stacked chart."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from statistics import median
from typing import Any

from bot.breakdown import UNATTRIBUTED, BreakdownPart, Dimension

UNATTRIBUTED_LABEL = "unattributed"
OTHER_LABEL = "other"
SHARE_PLACES = Decimal("0.0001")
MEDIAN_DAYS = 7  # a driver's usual cost: its median over this many days before
DRIVER_DAYS = MEDIAN_DAYS + 1  # what naming yesterday's drivers reads back from today


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    """One entry of a window: its cost, the previous window's, and the usage behind it where known."""

    key: str
    label: str
    cost: Decimal | None
    previous_cost: Decimal | None
    share: Decimal | None  # of the window's total, 0..1
    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    requests: int | None = None

    @property
    def change(self) -> Decimal | None:
        """`cost` minus `previous_cost`, when both are known."""
        if self.cost is None or self.previous_cost is None:
            return None
        return self.cost - self.previous_cost


@dataclass(frozen=True, slots=True)
class BreakdownTable:
    """The parts of one window (or of today so far) with their total from the ungrouped spend."""

    first: date
    last: date
    total: Decimal | None  # the window's spend; None when no day of it is known
    rows: tuple[BreakdownRow, ...]
    partial: bool = False  # today, while the provider is still counting it


@dataclass(frozen=True, slots=True)
class Driver:
    """One entry's cost on a day against its median over the days before."""

    key: str
    label: str
    cost: Decimal
    share: Decimal | None
    median: Decimal | None  # None when no earlier day is known

    @property
    def change(self) -> Decimal | None:
        """`cost` minus the median, when the median is known."""
        return None if self.median is None else self.cost - self.median


def window(days: int, today: date) -> tuple[date, date]:
    """The last `days` complete UTC days: the window ends yesterday."""
    return today - timedelta(days=days), today - timedelta(days=1)


def build_table(
    dimension: Dimension,
    parts: Sequence[BreakdownPart],
    spend: Mapping[date, Decimal],
    reported: Iterable[date],
    first: date,
    last: date,
    *,
    previous: tuple[date, date] | None = None,
    partial: bool = False,
) -> BreakdownTable:
    """The table of `first`..`last`: one row per entry, largest first, plus "unattributed" for the part of the
    ungrouped spend the entries do not explain, so that the rows add up to the total.

    `spend` is the ungrouped daily spend and `reported` the days the breakdown source answered. A day with
    spend but no breakdown answer is unattributed as a whole; a day the breakdown answered but whose spend is
    unknown counts its parts. API keys carry no money, so their rows have no cost and nothing reconciles.
    """
    answered = set(reported)
    current = _in(parts, first, last)
    total, gap = _reconcile(dimension, current, spend, answered, first, last)
    prior: dict[str, Decimal] = {}
    prior_gap: Decimal | None = None
    known_prior = False
    if previous is not None and all(day in answered for day in _days(*previous)):
        # Only a previous period broken down on every day says what each entry cost then: with a day missing
        # (out of the source's reach, a failed fetch) an entry's "change" would be invented.
        before = _in(parts, *previous)
        _prior_total, prior_gap = _reconcile(dimension, before, spend, answered, *previous)
        prior = _costs(before)
        known_prior = True
    rows = []
    for key, (label, cost, input_tokens, cached, output_tokens, requests) in _sums(current).items():
        rows.append(
            BreakdownRow(
                key=key,
                label=label,
                cost=cost,
                previous_cost=prior.get(key, Decimal(0)) if known_prior and cost is not None else None,
                share=_share(cost, total),
                input_tokens=input_tokens,
                cached_input_tokens=cached,
                output_tokens=output_tokens,
                requests=requests,
            )
        )
    rows.sort(key=lambda r: (r.cost is None, -(r.cost or 0), -(r.input_tokens or 0), r.label))
    if gap:
        rows.append(
            BreakdownRow(
                UNATTRIBUTED, UNATTRIBUTED_LABEL, gap, prior_gap if known_prior else None, _share(gap, total)
            )
        )
    return BreakdownTable(first, last, total, tuple(rows), partial)


def drivers(
    parts: Sequence[BreakdownPart],
    spend: Mapping[date, Decimal],
    reported: Iterable[date],
    day: date,
    *,
    top: int = 3,
) -> list[Driver]:
    """The `top` entries by cost on `day`, each against its median over the 7 days before (a day the source
    answered without the entry counts as zero; days it did not answer are left out)."""
    answered = set(reported)
    if day not in answered:
        return []
    history = [day - timedelta(days=n) for n in range(1, MEDIAN_DAYS + 1) if day - timedelta(days=n) in answered]
    by_day: dict[date, dict[str, Decimal]] = defaultdict(dict)
    labels: dict[str, str] = {}
    for part in parts:
        if part.cost is not None:
            by_day[part.day][part.key] = by_day[part.day].get(part.key, Decimal(0)) + part.cost
            labels[part.key] = part.label
    today = sorted(by_day.get(day, {}).items(), key=lambda item: (-item[1], item[0]))
    total = spend.get(day)
    result = []
    for key, cost in today[:top]:
        if cost <= 0:
            break
        earlier = [by_day.get(d, {}).get(key, Decimal(0)) for d in history]
        result.append(
            Driver(key, labels[key], cost, _share(cost, total), Decimal(median(earlier)) if earlier else None)
        )
    return result


def stacked(
    parts: Sequence[BreakdownPart], days: Sequence[date], *, answered: Iterable[date], top: int = 5
) -> tuple[list[str], dict[str, list[Decimal | None]]]:
    """Cost per day of the `top` entries over `days` (largest first) and the rest as "other": labels and one
    value per day for each, None on a day the source did not answer (a gap, never zero)."""
    # Only what the provider said counts: parts of a day it did not answer are left out of ranks and sums.
    said = set(answered)
    index = {day: n for n, day in enumerate(days) if day in said}
    totals: dict[str, Decimal] = defaultdict(Decimal)
    labels: dict[str, str] = {}
    for part in parts:
        if part.cost is not None and part.day in index:
            totals[part.key] += part.cost
            labels[part.key] = part.label
    ranked = sorted(totals, key=lambda key: (-totals[key], key))
    chosen, rest = ranked[:top], set(ranked[top:])
    # An answered day without an entry's part is a day it spent nothing: zero there, a gap elsewhere.
    empty: list[Decimal | None] = [Decimal(0) if day in index else None for day in days]
    series = {labels[key]: list(empty) for key in chosen}
    if rest:
        series[OTHER_LABEL] = list(empty)
    for part in parts:
        if part.cost is None or part.day not in index:
            continue
        name = labels[part.key] if part.key in chosen else OTHER_LABEL if part.key in rest else None
        if name is not None:
            value = series[name][index[part.day]]
            series[name][index[part.day]] = (value or Decimal(0)) + part.cost
    return list(series), series


def month_costs(parts: Sequence[BreakdownPart], month_start: date, *, top: int = 10) -> dict[str, Decimal]:
    """Cost per entry label from `month_start` on, the `top` largest only (bounded metric labels)."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for part in parts:
        if part.cost is not None and part.day >= month_start:
            totals[part.label] += part.cost
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:top])


def _in(parts: Sequence[BreakdownPart], first: date, last: date) -> list[BreakdownPart]:
    return [p for p in parts if first <= p.day <= last]


def _sums(parts: Sequence[BreakdownPart]) -> dict[str, list[Any]]:
    """Per key, in one pass: the newest label, then cost, input, cached input, output tokens and requests, each
    None while no part knows it."""
    sums: dict[str, list[Any]] = {}
    for part in parts:
        values = (part.cost, part.input_tokens, part.cached_input_tokens, part.output_tokens, part.requests)
        entry = sums.get(part.key)
        if entry is None:
            sums[part.key] = [part.label, *values]
            continue
        entry[0] = part.label
        for index, value in enumerate(values, start=1):
            if value is not None:
                entry[index] = value if entry[index] is None else entry[index] + value
    return sums


def _costs(parts: Sequence[BreakdownPart]) -> dict[str, Decimal]:
    costs: dict[str, Decimal] = defaultdict(Decimal)
    for part in parts:
        if part.cost is not None:
            costs[part.key] += part.cost
    return costs


def _reconcile(
    dimension: Dimension,
    parts: Sequence[BreakdownPart],
    spend: Mapping[date, Decimal],
    answered: set[date],
    first: date,
    last: date,
) -> tuple[Decimal | None, Decimal]:
    """The window's total and the gap the parts leave (zero for API keys, which carry no money)."""
    parts_by_day: dict[date, Decimal] = defaultdict(Decimal)
    for part in parts:
        if part.cost is not None:
            parts_by_day[part.day] += part.cost
    total: Decimal | None = None
    gap = Decimal(0)
    day = first
    while day <= last:
        day_spend = spend.get(day)
        if day_spend is None and day in answered and dimension is not Dimension.KEY:
            # Unknown ungrouped spend: the parts are all there is. Keys carry no money, so they never stand in.
            day_spend = parts_by_day.get(day, Decimal(0))
        if day_spend is not None:
            total = (total or Decimal(0)) + day_spend
            if dimension is not Dimension.KEY:
                gap += day_spend - (parts_by_day.get(day, Decimal(0)) if day in answered else Decimal(0))
        day += timedelta(days=1)
    return total, gap


def _share(cost: Decimal | None, total: Decimal | None) -> Decimal | None:
    # A share is a fraction from 0 to 1: a negative amount (a credit, parts ahead of the total) has none.
    if cost is None or cost < 0 or not total or total <= 0:
        return None
    return min(cost / total, Decimal(1)).quantize(SHARE_PLACES)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
