"""Breakdowns through the monitor: fetched incrementally at most hourly, stored, read back into tables that
reconcile with the day's spend; the demo account has one too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bot.breakdown import UNATTRIBUTED, Dimension
from bot.config import Account, AppConfig
from bot.monitor import Monitor
from bot.store import Store
from tests.conftest import make_account, make_settings
from tests.fake_breakdown import FakeBreakdown, FakeBreakdownServer, month_of_lines
from tests.fakes import Scripted


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


# Against the loopback fake of the providers' grouped reports: the whole path from HTTP to table.

TODAY = date(2026, 3, 20)
NOON = datetime(2026, 3, 20, 12, tzinfo=UTC)


@pytest.fixture
def grouped() -> Iterator[FakeBreakdownServer]:
    lines = month_of_lines(
        date(2026, 2, 1), TODAY, newcomer_from=date(2026, 3, 12), quiet_days=[date(2026, 3, 15)]
    )
    state = FakeBreakdown(openai=lines, anthropic=lines, openrouter=lines, today=TODAY)
    state.gaps[("openai", date(2026, 3, 17))] = Decimal("3.17")
    with FakeBreakdownServer(state) as server:
        yield server


def start_times(server: FakeBreakdownServer, path: str) -> list[date]:
    """The first day of each first-page request of a path (later pages carry a cursor)."""
    return sorted(
        datetime.fromtimestamp(int(r.query["start_time"][0]), UTC).date()
        for r in server.state.of("openai", path)
        if "page" not in r.query
    )


async def test_openai_from_wire_to_table_reconciles_with_the_known_gap(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, grouped: FakeBreakdownServer
) -> None:
    clock = Clock(NOON)
    account = make_account("oa", "openai", grouped.base_url("openai"))
    monitor = monitor_for(tmp_path, store, http, [account], clock)
    await monitor.refresh()
    (table,) = await monitor.breakdowns.tables([account], Dimension.MODEL, 7)
    assert table.table is not None
    assert table.note is None
    assert table.currency == "USD"
    spend = [grouped.state.spend("openai", TODAY - timedelta(days=n)) for n in range(1, 8)]
    assert table.table.total == sum(spend, Decimal(0))
    rows = {row.key: row for row in table.table.rows}
    assert rows[UNATTRIBUTED].cost == Decimal("3.17")
    assert sum(r.cost for r in table.table.rows if r.cost is not None) == table.table.total
    # o3 appeared on the 12th: all of it is new against the previous 7 days (the 6th to the 12th hold one day).
    o3_before = sum(
        (line.cost for line in grouped.state.openai if line.model == "o3" and line.day <= date(2026, 3, 12)),
        Decimal(0),
    )
    assert rows["o3"].previous_cost == o3_before
    assert rows["gpt-4o"].input_tokens == sum(
        line.tokens
        for line in grouped.state.openai
        if line.model == "gpt-4o"
        and line.token_type != "output"
        and date(2026, 3, 13) <= line.day <= date(2026, 3, 19)
    )
    assert table.today is not None
    assert table.today.partial
    assert table.today.total == grouped.state.spend("openai", TODAY)
    # A quiet day inside the window is covered with nothing: its spend is $0 and nothing is unattributed there.
    known = (await store.breakdowns.days(["oa"], date(2026, 3, 15), date(2026, 3, 15)))["oa"]
    assert known[date(2026, 3, 15)].reported


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_asked_before_any_poll_the_rows_still_add_up_to_the_ungrouped_costs(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, grouped: FakeBreakdownServer, provider: str
) -> None:
    """A fresh install: `creditbot breakdown` before the bot ever polled, over a window longer than the spend
    the polls keep: the total still comes from the ungrouped costs, and the gap is exactly the gap."""
    grouped.state.gaps[(provider, date(2026, 2, 10))] = Decimal("1.05")  # in the 30 days before the window
    grouped.state.gaps[(provider, date(2026, 3, 1))] = Decimal("0.50")
    account = make_account("acct", provider, grouped.base_url(provider))
    monitor = monitor_for(tmp_path, store, http, [account], Clock(NOON))
    (table,) = await monitor.breakdowns.tables([account], Dimension.PROJECT, 30)
    assert table.table is not None
    window = [TODAY - timedelta(days=n) for n in range(1, 31)]
    assert table.table.total == sum((grouped.state.spend(provider, d) for d in window), Decimal(0))
    gaps = sum((grouped.state.gaps.get((provider, d), Decimal(0)) for d in window), Decimal(0))
    rows = {row.key: row for row in table.table.rows}
    assert rows[UNATTRIBUTED].cost == gaps == (Decimal("3.67") if provider == "openai" else Decimal("0.50"))
    assert rows[UNATTRIBUTED].previous_cost == Decimal("1.05")
    assert sum(r.cost for r in table.table.rows if r.cost is not None) == table.table.total


async def test_days_already_final_are_never_fetched_again(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, grouped: FakeBreakdownServer
) -> None:
    clock = Clock(NOON)
    account = make_account("oa", "openai", grouped.base_url("openai"))
    monitor = monitor_for(tmp_path, store, http, [account], clock)
    await monitor.breakdowns.refresh([account], days=30)
    assert start_times(grouped, "/usage/completions") == [TODAY - timedelta(days=30)] * 2
    grouped.state.requests.clear()
    clock.now += timedelta(minutes=30)
    await monitor.breakdowns.refresh([account], days=30)
    assert grouped.state.requests == []  # within the hour: nothing asked
    clock.now += timedelta(hours=1)
    await monitor.breakdowns.refresh([account], days=30)
    # Only the days still settling (the last 3 and today) are asked for again, by every report.
    assert start_times(grouped, "/usage/completions") == [TODAY - timedelta(days=3)] * 2
    assert start_times(grouped, "/costs") == [TODAY - timedelta(days=3)] * 3  # ungrouped, by line item, by project
    # `breakdown --days 30` wants 60 days: only the 30 older ones are fetched, and they end before the stored.
    grouped.state.requests.clear()
    clock.now += timedelta(minutes=5)
    await monitor.breakdowns.tables([account], Dimension.PROJECT, 30)
    costs = [r for r in grouped.state.of("openai", "/costs") if "page" not in r.query]
    assert {datetime.fromtimestamp(int(r.query["start_time"][0]), UTC).date() for r in costs} == {
        TODAY - timedelta(days=60)
    }
    assert {datetime.fromtimestamp(int(r.query["end_time"][0]), UTC).date() for r in costs} == {
        TODAY - timedelta(days=30)
    }


async def test_a_failed_refresh_shows_what_is_stored_and_says_why(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, grouped: FakeBreakdownServer
) -> None:
    clock = Clock(NOON)
    account = make_account("an", "anthropic", grouped.base_url("anthropic"))
    monitor = monitor_for(tmp_path, store, http, [account], clock)
    await monitor.refresh()
    (first,) = await monitor.breakdowns.tables([account], Dimension.PROJECT, 7)
    assert first.table is not None
    grouped.state.faults["anthropic"] = Scripted(503, {"error": {"type": "overloaded_error", "message": "busy"}})
    clock.now += timedelta(hours=2)
    (second,) = await monitor.breakdowns.tables([account], Dimension.PROJECT, 7)
    assert second.note is not None
    assert second.note.startswith("could not refresh, showing what is stored: anthropic is failing (HTTP 503)")
    assert second.table == first.table
    # The fake's workspace list names none of these ids but the default: the others are shown by id.
    assert {r.label for r in second.table.rows} >= {"proj_main", "Default workspace"}


async def test_openrouter_breaks_down_by_model_only_and_a_lagging_today_is_not_shown(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, grouped: FakeBreakdownServer
) -> None:
    grouped.state.lag_today = True
    clock = Clock(NOON)
    account = make_account("or", "openrouter", grouped.base_url("openrouter"))
    monitor = monitor_for(tmp_path, store, http, [account], clock)
    await monitor.refresh()
    (model,) = await monitor.breakdowns.tables([account], Dimension.MODEL, 7)
    assert model.table is not None
    assert model.today is None
    assert UNATTRIBUTED not in {r.key for r in model.table.rows}
    assert {r.key for r in model.table.rows} == {"gpt-4o", "gpt-4o-mini", "o3"}
    (project,) = await monitor.breakdowns.tables([account], Dimension.PROJECT, 7)
    assert project.table is None
    assert project.note == "no breakdown by project from openrouter"


async def test_after_a_poll_a_failing_breakdown_costs_the_spend_nothing_and_is_retried_hourly(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, grouped: FakeBreakdownServer
) -> None:
    clock = Clock(NOON)
    account = make_account("oa", "openai", grouped.base_url("openai"))
    monitor = monitor_for(tmp_path, store, http, [account], clock)
    grouped.state.faults["openai/v1/organization/usage/completions"] = Scripted(
        500, {"error": {"message": "usage is down"}}
    )

    def usage_requests() -> int:
        return grouped.state.count("openai", "/usage/completions")

    (reading,) = await monitor.refresh()
    await monitor.upkeep()
    assert reading.ok
    assert reading.report is not None
    assert reading.report.spent_today is not None
    tried = usage_requests()
    assert tried > 0
    assert (await store.breakdowns.days(["oa"], TODAY - timedelta(days=40), TODAY))[
        "oa"
    ] == {}  # nothing half-stored
    for _poll in range(3):  # three more polls within the hour: the failing source is left alone
        clock.now += timedelta(minutes=15)
        await monitor.refresh()
        await monitor.upkeep()
    assert usage_requests() == tried
    (table,) = await monitor.breakdowns.tables([account], Dimension.MODEL, 7)  # asked for: fetched at once
    assert usage_requests() > tried
    assert table.note is not None
    assert "usage is down" in table.note
    del grouped.state.faults["openai/v1/organization/usage/completions"]
    clock.now += timedelta(minutes=61)
    await monitor.refresh()
    await monitor.upkeep()
    stored = (await store.breakdowns.days(["oa"], TODAY - timedelta(days=40), TODAY))["oa"]
    assert len(stored) == 31


async def test_breakdowns_off_fetches_nothing_after_polls(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, grouped: FakeBreakdownServer
) -> None:
    account = make_account("oa", "openai", grouped.base_url("openai"))
    config = AppConfig(make_settings(tmp_path, breakdowns=False), (account,), "test")
    monitor = Monitor(config, store, http, clock=Clock(NOON))
    await monitor.refresh()
    await monitor.upkeep()
    assert grouped.state.count("openai", "/usage/completions") == 0
    (table,) = await monitor.breakdowns.tables([account], Dimension.MODEL, 7)  # on demand, still
    assert table.table is not None
    assert grouped.state.count("openai", "/usage/completions") > 0


async def test_a_long_window_is_fetched_a_month_at_a_time_newest_first(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, grouped: FakeBreakdownServer
) -> None:
    account = make_account("oa", "openai", grouped.base_url("openai"))
    monitor = monitor_for(tmp_path, store, http, [account], Clock(NOON))
    await monitor.breakdowns.refresh([account], days=70)
    firsts = [
        (
            datetime.fromtimestamp(int(r.query["start_time"][0]), UTC).date(),
            datetime.fromtimestamp(int(r.query["end_time"][0]), UTC).date(),
        )
        for r in grouped.state.of("openai", "/usage/completions")
        if "page" not in r.query and r.query.get("group_by") == ["model"]
    ]
    # 71 days: today and the 30 before, the 31 before those, then the 9 oldest (end times are exclusive).
    assert firsts == [
        (TODAY - timedelta(days=30), TODAY),  # ends at the request's now: noon today
        (TODAY - timedelta(days=61), TODAY - timedelta(days=30)),
        (TODAY - timedelta(days=70), TODAY - timedelta(days=61)),
    ]
    stored = (await store.breakdowns.days(["oa"], TODAY - timedelta(days=80), TODAY))["oa"]
    assert sorted(stored) == [TODAY - timedelta(days=n) for n in range(70, -1, -1)]


async def test_a_refused_key_is_left_alone_after_polls_for_a_day_but_not_when_asked(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, grouped: FakeBreakdownServer
) -> None:
    clock = Clock(NOON)
    account = make_account("oa", "openai", grouped.base_url("openai"), api_key="bad")
    monitor = monitor_for(tmp_path, store, http, [account], clock)
    errors = await monitor.breakdowns.refresh([account], background=True)
    assert "sk-admin" in errors["oa"]  # the hint says which key is needed
    asked = len(grouped.state.requests)
    clock.now += timedelta(hours=23)
    assert await monitor.breakdowns.refresh([account], background=True) == {}
    assert len(grouped.state.requests) == asked
    (table,) = await monitor.breakdowns.tables([account], Dimension.MODEL, 7)
    assert len(grouped.state.requests) > asked
    assert table.note is not None
    assert "refused the key" in table.note
    clock.now += timedelta(hours=2)
    asked = len(grouped.state.requests)
    await monitor.breakdowns.refresh([account], background=True)
    assert len(grouped.state.requests) == asked  # the on-demand failure an hour ago restarted the day
    clock.now += timedelta(days=1)
    await monitor.breakdowns.refresh([account], background=True)
    assert len(grouped.state.requests) > asked


async def test_a_broken_breakdown_store_costs_housekeeping_nothing(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    demo = make_account("demo", "demo", "https://demo.invalid", api_key="demo")
    monitor = monitor_for(tmp_path, store, http, [demo], Clock(NOON))
    async with store.engine.begin() as connection:
        await connection.execute(sa.text("DROP TABLE breakdown_days"))
    pruned: list[bool] = []
    original = monitor.prune

    async def prune(*, budget: float | None = None) -> Any:
        pruned.append(True)
        return await original(budget=budget)

    monitor.prune = prune  # type: ignore[method-assign]
    await monitor.upkeep()
    assert pruned == [True]
    assert "breakdown upkeep failed" in caplog.text
    assert "breakdown pruning failed" in caplog.text


async def test_a_day_last_read_while_it_ran_is_read_again_after_midnight(
    tmp_path: Path, store: Store, http: httpx.AsyncClient
) -> None:
    clock = Clock(datetime(2026, 3, 15, 23, 50, tzinfo=UTC))
    demo = make_account("demo", "demo", "https://demo.invalid", api_key="demo")
    monitor = monitor_for(tmp_path, store, http, [demo], clock)
    await monitor.breakdowns.refresh([demo], days=3)
    clock.now = datetime(2026, 3, 16, 0, 10, tzinfo=UTC)  # 20 minutes later, but the 15th has ended since
    await monitor.breakdowns.refresh([demo], days=3)
    known = (await store.breakdowns.days(["demo"], date(2026, 3, 12), date(2026, 3, 16)))["demo"]
    assert known[date(2026, 3, 15)].fetched_at == clock.now
    assert known[date(2026, 3, 14)].fetched_at == clock.now  # not final either: asked with it
    assert known[date(2026, 3, 16)].fetched_at == clock.now
    clock.now += timedelta(minutes=30)
    await monitor.breakdowns.refresh([demo], days=3)
    again = (await store.breakdowns.days(["demo"], date(2026, 3, 12), date(2026, 3, 16)))["demo"]
    assert {d: i.fetched_at for d, i in again.items()} == {d: i.fetched_at for d, i in known.items()}
