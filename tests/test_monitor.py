"""The monitor and store together: concurrency, isolation, staleness, caching, the ledger."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import sqlalchemy as sa

from bot.models import BalanceSource, ErrorKind, Status
from bot.money import Money
from bot.store import Store
from tests.conftest import build_monitor, make_account
from tests.fakes import FakeProviderServer, Scripted, utc_today

D = Decimal


async def test_wal_mode_and_schema_migrated(store: Store) -> None:
    async with store.engine.connect() as connection:
        mode = (await connection.execute(sa.text("PRAGMA journal_mode"))).scalar_one()
        version = (await connection.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
        vacuum = (await connection.execute(sa.text("PRAGMA auto_vacuum"))).scalar_one()
    assert mode == "wal"
    assert version == "0008"
    assert vacuum == 2  # incremental: housekeeping gives free pages back


async def test_reopening_the_store_keeps_data(tmp_path: Path, fake: FakeProviderServer) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}"
    first = await Store.open(url)
    async with httpx.AsyncClient() as http:
        monitor = build_monitor(tmp_path, first, http, [make_account("ds", "deepseek", fake.base_url("deepseek"))])
        await monitor.refresh()
    await first.close()
    second = await Store.open(url)
    latest = await second.readings.latest_readings(["ds"])
    await second.close()
    assert latest["ds"].latest_good is not None
    assert latest["ds"].latest_good.report.balance == Money(D("110.00"), "CNY")  # type: ignore[union-attr]


async def test_one_failure_never_affects_the_others(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    accounts = [
        make_account("ds", "deepseek", fake.base_url("deepseek")),
        make_account("bad", "deepseek", fake.base_url("deepseek"), api_key="sk-xyzwrevoked"),
        make_account("ms", "moonshot", fake.base_url("moonshot")),
        make_account("down", "openrouter", "http://127.0.0.1:9"),
    ]
    monitor = build_monitor(tmp_path, store, http, accounts)
    views = {v.name: v for v in await monitor.views()}
    assert views["ds"].status is Status.OK
    assert views["ms"].balance == Money(D("49.58894"), "USD")
    assert views["bad"].status is Status.ERROR
    assert views["bad"].error_kind is ErrorKind.AUTH
    assert views["down"].status is Status.ERROR
    assert views["down"].balance is None  # a failed fetch is never a zero balance


async def test_failed_fetch_keeps_last_good_reading_marked_stale(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    monitor = build_monitor(tmp_path, store, http, [make_account("ds", "deepseek", fake.base_url("deepseek"))])
    await monitor.views()
    fake.state.script("deepseek", *[Scripted(500, {"error": {"message": "down"}}) for _ in range(3)])
    monitor._sleep = _instant  # type: ignore[assignment]
    (view,) = await monitor.views(refresh=True)
    assert view.stale is True
    assert view.balance == Money(D("110.00"), "CNY")
    assert "HTTP 500" in (view.error or "")
    assert view.status is Status.OK


async def test_reading_older_than_stale_after_no_longer_counts(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    monitor = build_monitor(
        tmp_path,
        store,
        http,
        [make_account("ds", "deepseek", fake.base_url("deepseek"))],
        stale_after="1h",
        cache_seconds=86400,
    )
    await monitor.views()
    monitor.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    fake.state.script("deepseek", *[Scripted(503, b"") for _ in range(3)])
    monitor._sleep = _instant  # type: ignore[assignment]
    (view,) = await monitor.views(refresh=True)
    assert view.status is Status.ERROR
    assert view.balance is None
    assert "last good reading is 2 h old" in (view.error or "")


async def test_cache_serves_recent_readings_from_the_store(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    monitor = build_monitor(
        tmp_path, store, http, [make_account("ds", "deepseek", fake.base_url("deepseek"))], cache_seconds=60
    )
    await monitor.views()
    await monitor.views()
    assert fake.state.count("deepseek") == 1
    await monitor.views(refresh=True)
    assert fake.state.count("deepseek") == 2


async def test_concurrency_and_per_host_limits(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    fake.state.latency = 0.05
    accounts = [make_account(f"ds{i}", "deepseek", fake.base_url("deepseek")) for i in range(12)]
    monitor = build_monitor(tmp_path, store, http, accounts)
    started = asyncio.get_running_loop().time()
    readings = await monitor.refresh()
    elapsed = asyncio.get_running_loop().time() - started
    assert len(readings) == 12
    assert all(r.ok for r in readings)
    assert fake.state.peak_in_flight["deepseek"] == 4
    assert elapsed < 12 * 0.05  # concurrent, not sequential


async def test_account_timeout_covers_all_its_requests(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    fake.state.script("deepseek", Scripted(200, {"is_available": True, "balance_infos": []}, delay=3))
    monitor = build_monitor(
        tmp_path, store, http, [make_account("ds", "deepseek", fake.base_url("deepseek"))], fetch_timeout="1s"
    )
    (view,) = await monitor.views()
    assert view.status is Status.ERROR
    assert "did not answer within 1 s" in (view.error or "")


async def test_spend_only_estimate_from_config_and_recorded_topups(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    today = utc_today()
    since = today - timedelta(days=10)
    fake.state.openai_daily = {since + timedelta(days=i): D("2.00") for i in range(11)}
    fake.state.openai_daily[since - timedelta(days=1)] = D("500")  # before the first top-up: not counted
    account = make_account(
        "oa",
        "openai",
        fake.base_url("openai"),
        prepaid_credit=Money(D(50), "USD"),
        prepaid_since=since,
        monthly_budget=D(1000),
        warn_below=D(10),
        critical_below=D(5),
    )
    monitor = build_monitor(tmp_path, store, http, [account])
    (view,) = await monitor.views()
    assert view.balance_source is BalanceSource.ESTIMATED
    assert view.balance == Money(D(50) - D(22), "USD")
    assert view.burn_rate == Money(D(2), "USD")
    assert view.days_left == D(14)
    await monitor.record_topup(account, Money(D(30), "USD"), today, "cli")
    (view,) = await monitor.views()
    assert view.balance == Money(D(58), "USD")
    assert view.status is Status.OK


async def test_incremental_fetch_reuses_stored_spend(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    today = utc_today()
    fake.state.anthropic_daily_cents = {today - timedelta(days=i): D(100) for i in range(60)}
    monitor = build_monitor(tmp_path, store, http, [make_account("an", "anthropic", fake.base_url("anthropic"))])
    await monitor.views()
    first_pages = fake.state.count("anthropic")
    (view,) = await monitor.views(refresh=True)
    assert fake.state.count("anthropic") - first_pages == 1  # only the last few days again
    second_start = fake.state.requests[-1].query["starting_at"][0]
    assert second_start.startswith(str(today - timedelta(days=3)))
    assert view.spent_month == Money(D(today.day), "USD")
    assert len(view.spend_series) >= 31


async def test_status_from_thresholds_and_budget(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    today = utc_today()
    fake.state.openai_daily = {today.replace(day=1) + timedelta(days=i): D(10) for i in range(today.day)}
    accounts = [
        make_account("low", "deepseek", fake.base_url("deepseek"), warn_below=D(200), critical_below=D(50)),
        make_account("crit", "deepseek", fake.base_url("deepseek"), critical_below=D(500)),
        make_account("over", "openai", fake.base_url("openai"), monthly_budget=D(10 * today.day)),
        make_account("near", "openai", fake.base_url("openai"), monthly_budget=D(10 * today.day) / D("0.85")),
        make_account("fine", "openai", fake.base_url("openai"), monthly_budget=D(100000)),
    ]
    monitor = build_monitor(tmp_path, store, http, accounts)
    statuses = {v.name: v.status for v in await monitor.views()}
    assert statuses == {
        "low": Status.WARNING,
        "crit": Status.CRITICAL,
        "over": Status.CRITICAL,
        "near": Status.WARNING,
        "fine": Status.OK,
    }


async def test_prune_drops_old_readings(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    monitor = build_monitor(
        tmp_path, store, http, [make_account("ds", "deepseek", fake.base_url("deepseek"))], retention_days=1
    )
    await monitor.refresh()
    monitor.clock = lambda: datetime.now(UTC) + timedelta(days=2)
    assert (await monitor.prune()).expired == 1


async def _instant(_seconds: float) -> None:
    return None


async def test_a_slow_provider_delays_an_answer_by_the_answer_budget_only(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    monitor = build_monitor(tmp_path, store, http, [make_account("ds", "deepseek", fake.base_url("deepseek"))])
    (first,) = await monitor.views()
    assert first.balance == Money(D("110.00"), "CNY")
    fake.state.deepseek_infos = [{"currency": "CNY", "total_balance": "90.00"}]
    fake.state.latency = 2.0  # the stored reading is older than the cache (0 s): a fetch is due
    started = asyncio.get_running_loop().time()
    answers = await asyncio.gather(monitor.views(wait=0.5), monitor.views(wait=0.5))
    assert asyncio.get_running_loop().time() - started < 1.5
    assert [view.balance for (view,) in answers] == [Money(D("110.00"), "CNY")] * 2  # the stored reading
    # Both answers joined one fetch, which goes on in the background and stores the new balance.
    balance = None
    for _ in range(100):
        (view,) = await monitor.views(stored_only=True)
        balance = view.balance
        if balance == Money(D("90.00"), "CNY"):
            break
        await asyncio.sleep(0.05)
    assert balance == Money(D("90.00"), "CNY")
    assert fake.state.count("deepseek") == 2


async def test_with_nothing_stored_an_answer_waits_for_the_fetch(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    monitor = build_monitor(tmp_path, store, http, [make_account("ds", "deepseek", fake.base_url("deepseek"))])
    fake.state.latency = 0.6
    (view,) = await monitor.views(wait=0.2)
    assert view.balance == Money(D("110.00"), "CNY")


async def test_without_a_wait_a_slow_fetch_is_waited_for_and_stored(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    # The CLI and the summaries ask without `wait`: they must show (and store) the new reading.
    monitor = build_monitor(tmp_path, store, http, [make_account("ds", "deepseek", fake.base_url("deepseek"))])
    await monitor.views()
    fake.state.deepseek_infos = [{"currency": "CNY", "total_balance": "90.00"}]
    fake.state.latency = 0.6
    (view,) = await monitor.views()
    assert view.balance == Money(D("90.00"), "CNY")
