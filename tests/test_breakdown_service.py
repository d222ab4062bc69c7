"""Breakdowns through the monitor: fetched incrementally at most hourly, stored, read back into tables that
reconcile with the day's spend; the demo account has one too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

from bot.breakdown import UNATTRIBUTED, Dimension
from bot.config import Account, AppConfig
from bot.monitor import Monitor
from bot.store import Store
from tests.conftest import make_account, make_settings


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def monitor_for(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, accounts: list[Account], clock: Clock
) -> Monitor:
    config = AppConfig(make_settings(tmp_path), tuple(accounts), "test")
    return Monitor(config, store, http, clock=clock)


async def test_the_demo_breaks_its_spend_down_exactly_and_names_the_spike(
    tmp_path: Path, store: Store, http: httpx.AsyncClient
) -> None:
    clock = Clock(datetime(2026, 3, 16, 9, 30, tzinfo=UTC))
    demo = make_account("demo", "demo", "https://demo.invalid", api_key="demo")
    monitor = monitor_for(tmp_path, store, http, [demo], clock)
    await monitor.refresh()
    assert await monitor.breakdowns.refresh([demo]) == {}
    (model,) = await monitor.breakdowns.tables([demo], Dimension.MODEL, 7)
    assert model.table is not None
    assert model.table.total is not None
    assert model.table.total > 0
    assert UNATTRIBUTED not in [r.key for r in model.table.rows]
    assert sum(r.cost for r in model.table.rows if r.cost is not None) == model.table.total
    assert model.today is not None
    assert model.today.partial
    (line,) = await monitor.breakdowns.tables([demo], Dimension.LINE_ITEM, 7)
    assert line.table is not None
    assert line.table.total == model.table.total
    drivers = (await monitor.breakdowns.drivers([demo], datetime(2026, 3, 15).date(), Dimension.LINE_ITEM))["demo"]
    assert drivers[0].key == "gpt-4o, output"
    assert drivers[0].median is not None
    assert drivers[0].cost > 3 * drivers[0].median


async def test_accounts_without_breakdown_say_so(tmp_path: Path, store: Store, http: httpx.AsyncClient) -> None:
    clock = Clock(datetime(2026, 3, 16, 9, 30, tzinfo=UTC))
    deepseek = make_account("ds", "deepseek", "http://127.0.0.1:9")
    demo = make_account("demo", "demo", "https://demo.invalid", api_key="demo")
    monitor = monitor_for(tmp_path, store, http, [deepseek, demo], clock)
    ds, _demo = await monitor.breakdowns.tables([deepseek, demo], Dimension.MODEL, 7)
    assert ds.table is None
    assert ds.note == "no breakdown from this provider"


async def test_a_refresh_within_the_hour_fetches_nothing_and_final_days_are_never_fetched_again(
    tmp_path: Path, store: Store, http: httpx.AsyncClient
) -> None:
    clock = Clock(datetime(2026, 3, 16, 9, 30, tzinfo=UTC))
    demo = make_account("demo", "demo", "https://demo.invalid", api_key="demo")
    monitor = monitor_for(tmp_path, store, http, [demo], clock)
    await monitor.breakdowns.refresh([demo], days=30)
    first = (await store.breakdowns.days(["demo"], clock.now.date() - timedelta(days=60), clock.now.date()))[
        "demo"
    ]
    assert len(first) == 31
    assert all(info.final for d, info in first.items() if d < clock.now.date() - timedelta(days=3))
    clock.now += timedelta(minutes=59)
    await monitor.breakdowns.refresh([demo], days=30)
    again = (await store.breakdowns.days(["demo"], clock.now.date() - timedelta(days=60), clock.now.date()))[
        "demo"
    ]
    assert {d: i.fetched_at for d, i in again.items()} == {d: i.fetched_at for d, i in first.items()}
    clock.now += timedelta(minutes=2)
    await monitor.breakdowns.refresh([demo], days=30)
    later = (await store.breakdowns.days(["demo"], clock.now.date() - timedelta(days=60), clock.now.date()))[
        "demo"
    ]
    refetched = sorted(d for d, i in later.items() if i.fetched_at == clock.now)
    today = clock.now.date()
    assert refetched == [today - timedelta(days=n) for n in range(3, -1, -1)]
    # Widening the window asks only for the older days not yet stored.
    await monitor.breakdowns.refresh([demo], days=45)
    wider = (await store.breakdowns.days(["demo"], today - timedelta(days=60), today))["demo"]
    newly = sorted(d for d, i in wider.items() if d not in later)
    assert newly == [today - timedelta(days=n) for n in range(45, 30, -1)]
    assert all(wider[d].fetched_at == later[d].fetched_at for d in later)
    assert Decimal(0) < sum(
        (p.cost or Decimal(0))
        for p in (await store.breakdowns.parts(["demo"], Dimension.MODEL, today, today))["demo"]
    )
