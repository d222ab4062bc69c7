"""OpenRouter's breakdown: money, tokens and requests by model from the activity rows (management key).

`/api/v1/activity` has rows for the last 30 completed UTC days, only for days with usage, so a day of that
window without rows spent nothing and a day before it is unknown; `?date=` with today's date gives the
current day's rows so far."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from bot.breakdown import BreakdownReport, Dimension
from bot.providers.base import BadResponseError, FetchRequest, amount, expect_list, require
from bot.providers.breakdown_tally import Tally, count, day_span, empty_report, gather_all, label_of

PROVIDER = "openrouter"
DIMENSIONS = (Dimension.MODEL,)
ACTIVITY = "/api/v1/activity"
WINDOW_DAYS = 30  # the activity endpoint covers the last 30 completed UTC days
MANAGEMENT_KEY_HELP = (
    "openrouter gives the breakdown by model only to a management key: create one under "
    "openrouter.ai > Settings > Management keys"
)


async def fetch_openrouter_breakdown(request: FetchRequest, until: date) -> BreakdownReport:
    """OpenRouter's breakdown by model of `request.since` to `until`, as far as the activity window reaches."""
    today = request.now.date()
    last = min(until, today)
    window = (max(request.since, today - timedelta(days=WINDOW_DAYS)), min(last, today - timedelta(days=1)))
    wants_window = window[0] <= window[1]
    wants_today = request.since <= today <= last
    if not wants_window and not wants_today:
        return empty_report(DIMENSIONS)
    headers = request.bearer()

    async def activity(params: dict[str, str]) -> Any:
        return await request.http.get_json(request.url(ACTIVITY), headers=headers, params=params)

    calls = []
    if wants_window:
        calls.append(activity({}))
    if wants_today:
        calls.append(activity({"date": today.isoformat()}))
    bodies = await gather_all(*calls)
    tally = Tally()
    covered: set[date] = set(day_span(*window)) if wants_window else set()
    if wants_window:
        _read(bodies[0], tally, set(covered))
    if wants_today:
        today_days: set[date] = set()
        _read(bodies[-1], tally, {today}, today_days)
        # Today counts only once it has rows: none yet may be lag, which is unknown rather than $0.
        covered |= today_days
    days = tuple(sorted(covered))
    parts = tally.parts(days)
    # The activity rows are OpenRouter's only account of spend, and each names its model: they are the total.
    totals = {day: Decimal(0) for day in days}
    for part in parts:
        totals[part.day] += part.cost or Decimal(0)
    return BreakdownReport("USD", days, parts, frozenset(DIMENSIONS), totals)


def _read(body: Any, tally: Tally, wanted: set[date], found: set[date] | None = None) -> None:
    """Add the rows of one activity answer on the `wanted` days to the tally (rows of other days are left
    out: the window answer may hold days before `since`, the dated one nothing but its day)."""
    for row in expect_list(require(body, "data", PROVIDER, "activity"), "activity 'data'", PROVIDER):
        text = str(require(row, "date", PROVIDER, "activity row"))[:10]
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise BadResponseError(f"openrouter activity row has an unreadable date: {text!r}") from None
        if day not in wanted:
            continue
        model = label_of(require(row, "model", PROVIDER, "activity row"), "model", PROVIDER)
        if model is None:
            raise BadResponseError("openrouter activity row has an empty 'model'")
        # A row without its money is a broken row, never a free one.
        cost = amount(require(row, "usage", PROVIDER, "activity row"), "activity usage", PROVIDER)
        tally.add_cost(day, Dimension.MODEL, model, model, cost)
        tally.add_usage(
            day,
            Dimension.MODEL,
            model,
            model,
            input_tokens=count(row, "prompt_tokens", PROVIDER, optional=True),
            cached_input_tokens=None,  # the activity rows do not tell cached input apart
            output_tokens=count(row, "completion_tokens", PROVIDER, optional=True),
            requests=count(row, "requests", PROVIDER, optional=True),
        )
        if found is not None:
            found.add(day)
