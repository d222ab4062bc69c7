"""Breakdown days and parts on SQLite and PostgreSQL: replaced a day at a time, lag remembered, pruned."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bot.breakdown import BreakdownPart, BreakdownReport, Dimension
from bot.store import Store
from tests.test_store_backends import store  # noqa: F401  (the fixture, on both backends)

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
TODAY = NOW.date()
ALL = frozenset(Dimension)


def day(n: int) -> date:
    return TODAY - timedelta(days=n)


def report(days: list[date], parts: list[BreakdownPart]) -> BreakdownReport:
    return BreakdownReport("USD", tuple(days), tuple(parts), ALL)


async def test_a_day_is_replaced_whole_and_unreported_days_are_remembered_as_asked(store: Store) -> None:  # noqa: F811
    asked = [day(n) for n in range(5, -1, -1)]
    first = [
        BreakdownPart(day(5), Dimension.MODEL, "gpt-4o", "gpt-4o", Decimal("1.000000000001"), 10, 2, 3, 1),
        BreakdownPart(day(1), Dimension.MODEL, "gpt-4o", "gpt-4o", Decimal("2"), 2**40, None, None, None),
        BreakdownPart(day(1), Dimension.MODEL, "o1", "o1", Decimal("3")),
        BreakdownPart(day(1), Dimension.KEY, "key_a", "key_a", None, 5, None, 1, 9),
        BreakdownPart(day(1), Dimension.PROJECT, "proj_1", "Main app", Decimal("5")),
    ]
    # Today lags: asked, not reported.
    await store.breakdowns.save("acct", asked, report(asked[:-1], first), settled_before=day(3), now=NOW)
    known = (await store.breakdowns.days(["acct"], day(10), TODAY))["acct"]
    assert sorted(known) == asked
    assert [known[d].final for d in asked] == [True, True, False, False, False, False]
    assert not known[TODAY].reported
    assert known[TODAY].currency is None
    assert known[day(1)].currency == "USD"
    assert known[day(1)].fetched_at == NOW
    models = (await store.breakdowns.parts(["acct"], Dimension.MODEL, day(10), TODAY))["acct"]
    assert models == [p for p in first if p.dimension is Dimension.MODEL]
    keys = (await store.breakdowns.parts(["acct"], Dimension.KEY, day(10), TODAY))["acct"]
    assert keys == [first[3]]

    later = NOW + timedelta(hours=2)
    second = [BreakdownPart(day(1), Dimension.MODEL, "o1", "o1", Decimal("4"))]
    await store.breakdowns.save(
        "acct", [day(1), TODAY], report([day(1)], second), settled_before=day(3), now=later
    )
    models = (await store.breakdowns.parts(["acct"], Dimension.MODEL, day(2), TODAY))["acct"]
    assert models == second  # gpt-4o of day 1 is gone: the day was answered again without it
    projects = await store.breakdowns.parts(["acct"], Dimension.PROJECT, day(2), TODAY)
    assert projects == {"acct": []}
    known = (await store.breakdowns.days(["acct"], day(10), TODAY))["acct"]
    assert known[day(1)].fetched_at == later
    assert known[day(5)].fetched_at == NOW  # not asked again: untouched


async def test_prune_forgets_days_before_the_retention(store: Store) -> None:  # noqa: F811
    asked = [day(40), day(2)]
    parts = [BreakdownPart(d, Dimension.MODEL, "m", "m", Decimal(1)) for d in asked]
    await store.breakdowns.save("acct", asked, report(asked, parts), settled_before=day(3), now=NOW)
    await store.breakdowns.prune(day(30))
    assert sorted((await store.breakdowns.days(["acct"], day(60), TODAY))["acct"]) == [day(2)]
    assert [p.day for p in (await store.breakdowns.parts(["acct"], Dimension.MODEL, day(60), TODAY))["acct"]] == [
        day(2)
    ]


async def test_a_long_first_fetch_is_stored_in_several_statements(store: Store) -> None:  # noqa: F811
    asked = [day(n) for n in range(450, -1, -1)]
    parts = [BreakdownPart(d, Dimension.LINE_ITEM, f"m{k}, input", f"m{k}, input", Decimal(k)) for d in asked
             for k in range(3)]  # fmt: skip
    await store.breakdowns.save("acct", asked, report(asked, parts), settled_before=day(3), now=NOW)
    stored = (await store.breakdowns.parts(["acct"], Dimension.LINE_ITEM, day(450), TODAY))["acct"]
    assert len(stored) == len(parts)
