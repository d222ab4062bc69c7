"""Right on every day of the year: calendar days in the channel's zone across DST changes, and a balance at or
below zero that has run out."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import time as time_module
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from bot.channels import Channel
from bot.chart import ChartSeries, _projection_note, render_chart
from bot.chart_data import _projection
from bot.config import AppConfig
from bot.forecast import days_left
from bot.models import ErrorKind, Reading, Status, Thresholds
from bot.money import Money
from bot.providers.demo import DemoProvider
from bot.store import Store
from bot.views import account_status
from tests.conftest import (
    TEST_KEYS,
    build_monitor,
    fetch_request,
    make_account,
    make_runtime,
    make_settings,
)
from tests.fakes import FakeProviderServer
from tests.test_cli import run_cli
from tests.test_run_e2e import BotProcess, bot_env, free_port


@pytest.mark.parametrize(
    ("zone", "at", "day", "expected_utc"),
    [
        # 01:30 does not exist in London on 30 March 2025 (01:00 GMT jumps to 02:00 BST): due as the gap ends.
        ("Europe/London", time(1, 30), "2025-03-30", "2025-03-30T01:00"),
        ("America/New_York", time(2, 30), "2025-03-09", "2025-03-09T07:00"),
        ("Australia/Lord_Howe", time(2, 15), "2025-10-05", "2025-10-04T15:30"),
    ],
)
def test_a_summary_time_the_clocks_skip_is_due_as_the_gap_ends(
    zone: str, at: time, day: str, expected_utc: str
) -> None:
    channel = Channel("console", "c", daily_summary=at, timezone=zone)
    expected = datetime.fromisoformat(expected_utc).replace(tzinfo=UTC)
    # A restart just after the gap (the scheduler then thinks today's time has passed) still finds it due.
    assert channel.last_due(expected + timedelta(minutes=1)) == expected
    assert channel.summary_date(expected) == day


@pytest.mark.parametrize(
    ("zone", "at", "now_utc", "expected_utc"),
    [
        # London springs forward on 30 March 2025 at 01:00 UTC. Restarted at 00:15 BST on the 31st, the last
        # 00:30 summary was the 30th's (00:30 GMT), not the 29th's.
        ("Europe/London", time(0, 30), "2025-03-30T23:15", "2025-03-30T00:30"),
        # London falls back on 26 October 2025 at 01:00 UTC. At 23:30 GMT that day, the last 23:50 summary was
        # the 25th's (22:50 UTC); the 26th's is still ahead.
        ("Europe/London", time(23, 50), "2025-10-26T23:30", "2025-10-25T22:50"),
        # New York, 9 March 2025 (spring forward at 07:00 UTC): at 00:02 EDT on the 10th, the last 00:05 summary
        # was the 9th's (00:05 EST).
        ("America/New_York", time(0, 5), "2025-03-10T04:02", "2025-03-09T05:05"),
        # Lord Howe moves by half an hour (6 April 2025, 02:00 local +11 -> 01:30 +10:30).
        ("Australia/Lord_Howe", time(0, 15), "2025-04-06T13:40", "2025-04-05T13:15"),
        # An ordinary day: today's summary is past.
        ("Europe/Paris", time(9, 0), "2025-06-02T08:00", "2025-06-02T07:00"),
    ],
)
def test_last_due_counts_local_calendar_days(zone: str, at: time, now_utc: str, expected_utc: str) -> None:
    channel = Channel("console", "c", daily_summary=at, timezone=zone)
    now = datetime.fromisoformat(now_utc).replace(tzinfo=UTC)
    due = channel.last_due(now)
    assert due is not None
    assert due <= now
    assert due == datetime.fromisoformat(expected_utc).replace(tzinfo=UTC)


# A balance at or below zero has run out: critical whatever the thresholds, no runway, no projection.


def test_a_negative_estimate_is_critical_with_no_days_left(tmp_path: Path, fake: FakeProviderServer) -> None:
    today = datetime.now(UTC).date()
    # Prepaid 10.00, spent 9 x 1.25 + 2.00 = 13.25 since: 3.25 more than was bought, with no threshold set.
    fake.state.openai_daily = {today - timedelta(days=i): Decimal("1.25") for i in range(1, 10)}
    fake.state.openai_daily[today] = Decimal("2.00")
    toml = f"""
[[accounts]]
name = "openai-main"
provider = "openai"
api_key = "{TEST_KEYS["openai"]}"
base_url = "{fake.base_url("openai")}"
prepaid_credit = "10.00"
prepaid_since = {today - timedelta(days=9)}
"""
    result = run_cli(tmp_path, "check", "--json", toml=toml)
    (account,) = json.loads(result.stdout)["accounts"]
    assert account["balance"] == pytest.approx(-3.25)
    assert (account["status"], account["days_left"]) == ("critical", 0.0)
    assert result.returncode == 2


def test_days_left_of_a_spent_balance_is_zero_even_without_burn() -> None:
    assert days_left(Money(Decimal(0), "USD"), None) == 0
    assert days_left(Money(Decimal("-3.25"), "USD"), Money(Decimal(0), "USD")) == 0
    assert account_status(Money(Decimal("-0.01"), "USD"), None, None, Thresholds()) is Status.CRITICAL
    assert account_status(Money(Decimal("0.01"), "USD"), None, None, Thresholds()) is Status.OK


def test_a_chart_of_a_spent_balance_says_ran_out_and_projects_nothing() -> None:
    today = date(2026, 11, 29)
    assert _projection(today, Decimal("-3.25"), Decimal("1.10"), today + timedelta(days=30)) == ()
    points = ((today - timedelta(days=1), Decimal("1.00")), (today, Decimal("-3.25")))
    assert _projection_note(ChartSeries("a", "USD", "balance", points, (), None)) == "ran out"
    chart = render_chart(
        [ChartSeries("a", "USD", "balance", points, (), None)], "t", generated_at=datetime.now(UTC)
    )
    assert chart.startswith(b"\x89PNG")


async def test_an_estimate_from_a_ledger_older_than_three_years_and_no_refetch(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    today = datetime.now(UTC).date()
    first = today - timedelta(days=1200)
    fake.state.openai_daily = {first + timedelta(days=i): Decimal("0.05") for i in range(1201)}
    account = make_account("old", "openai", fake.base_url("openai"))
    account = replace(account, prepaid_credit=Money(Decimal(500), "USD"), prepaid_since=first)
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}")
    try:
        async with httpx.AsyncClient() as http:
            monitor = build_monitor(tmp_path, store, http, [account])
            (view,) = await monitor.views(refresh=True)
            assert view.balance == Money(Decimal(500) - Decimal("0.05") * 1201, "USD")
            asked = len(fake.state.requests)
            (again,) = await monitor.views(refresh=True)
        assert again.balance == view.balance
        later = [r for r in fake.state.requests[asked:] if r.provider == "openai"]
        starts = {datetime.fromtimestamp(int(r.query["start_time"][0]), UTC).date() for r in later}
        assert starts
        assert min(starts) >= today - timedelta(days=7), "stored days were fetched again"
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CREDITBOT_RETENTION_DAYS", "740000", "less than or equal to 3660"),
        ("CREDITBOT_POLL_SECONDS", "inf", "finite number"),
        ("CREDITBOT_POLL_SECONDS", "1e20", "less than or equal to 86400"),
        ("CREDITBOT_FETCH_TIMEOUT", "900", "between 0.1 s and 300 s"),
        ("CREDITBOT_CACHE_SECONDS", "nan", "finite number"),
        ("CREDITBOT_STALE_AFTER", "90d", "at most 30 days"),
        ("CREDITBOT_DISPATCH_SECONDS", "1e9", "less than or equal to 3600"),
    ],
)
def test_a_setting_out_of_bounds_is_one_line_and_exit_78(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    result = run_cli(tmp_path, "check", env={variable: value})
    assert result.returncode == 78
    assert f"configuration error: environment: {variable}: " in result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_a_failing_prune_costs_the_poll_nothing(tmp_path: Path, fake: FakeProviderServer) -> None:
    config = AppConfig(make_settings(tmp_path), (make_account("ds", "deepseek", fake.base_url("deepseek")),), "t")
    store = await Store.open(config.settings.database_url)
    try:
        async with httpx.AsyncClient() as http:
            runtime = make_runtime(config, store, http, [])

            async def broken() -> int:
                raise OverflowError("date value out of range")

            runtime.monitor.prune = broken  # type: ignore[method-assign]
            await runtime.poll()
            assert runtime.polls == 1
            assert (await store.readings.latest_readings(["ds"]))["ds"].latest is not None
    finally:
        await store.close()


async def test_the_demo_looks_healthy_on_every_day_of_two_years() -> None:
    provider = DemoProvider()
    async with httpx.AsyncClient() as client:
        for offset in range(0, 730):
            now = datetime(2026, 1, 1, 23, 59, tzinfo=UTC) + timedelta(days=offset)
            request = fetch_request(client, "demo", "https://demo.invalid", key="demo", since=now.date(), now=now)
            report = await provider.fetch(request)
            assert report.balance is not None
            assert report.balance.amount > 15, now  # above the demo's warning level: never a false alarm
            assert report.spent_month is not None
            assert report.spent_month.amount >= 0


def test_the_demo_never_writes_into_the_real_database(tmp_path: Path, fake: FakeProviderServer) -> None:
    home = tmp_path / "home"
    home.mkdir()
    demo = run_cli(home, "summary", "--send")  # nothing configured: the demo delivers to the console
    assert demo.returncode == 0, demo.stderr
    assert (home / "data" / "demo.db").exists()
    assert not (home / "data" / "creditbot.db").exists()
    toml = f"""
[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "{TEST_KEYS["deepseek"]}"
base_url = "{fake.base_url("deepseek")}"

[[channels]]
platform = "console"
id = "stdout"
"""
    real = run_cli(home, "alerts", toml=toml)
    assert real.returncode == 0, real.stderr
    assert "demo" not in real.stdout


async def test_stopping_mid_poll_keeps_what_was_fetched_within_the_grace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        if "deepseek" in request.url.path:
            infos = [
                {"currency": "CNY", "total_balance": "42.00", "granted_balance": "0", "topped_up_balance": "42"}
            ]
            return httpx.Response(200, json={"is_available": True, "balance_infos": infos})
        await asyncio.sleep(3600)  # a provider that never answers
        raise AssertionError("unreachable")

    accounts = (
        make_account("ds", "deepseek", "http://provider.test/deepseek"),
        make_account("stuck", "moonshot", "http://provider.test/moonshot"),
    )
    config = AppConfig(make_settings(tmp_path, fetch_timeout=120, CREDITBOT_STOP_GRACE_SECONDS=1), accounts, "t")
    store = await Store.open(config.settings.database_url)
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            runtime = make_runtime(config, store, http, [])
            runtime.leading = True
            poll = asyncio.create_task(runtime._job("poll", runtime.poll))
            await asyncio.sleep(0.5)
            started = time_module.monotonic()
            await runtime.stop()
            took = time_module.monotonic() - started
            await poll
        latest = await store.readings.latest_readings(["ds", "stuck"])
    finally:
        await store.close()
    assert took < 1 + 5
    assert latest["ds"].latest_good is not None
    assert latest["ds"].latest_good.report.balance == Money(Decimal(42), "CNY")
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_a_channel_with_an_empty_account_list_is_a_configuration_error(tmp_path: Path) -> None:
    toml = f"""
[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "{TEST_KEYS["deepseek"]}"

[[channels]]
platform = "console"
id = "ops"
accounts = []
"""
    result = run_cli(tmp_path, "accounts", toml=toml)
    assert result.returncode == 78
    assert "channels[0] 'ops': accounts: is empty" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_run_stops_within_the_grace_with_a_provider_that_never_answers(
    tmp_path: Path, fake: FakeProviderServer, stop_signal: signal.Signals
) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        (tmp_path / "creditbot.toml").write_text(f"""
[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "{TEST_KEYS["deepseek"]}"
base_url = "{fake.base_url("deepseek")}"

[[accounts]]
name = "stuck"
provider = "moonshot"
api_key = "{TEST_KEYS["moonshot"]}"
base_url = "http://127.0.0.1:{silent.getsockname()[1]}"
""")
        env = {
            **bot_env(tmp_path, free_port()),
            "CREDITBOT_POLL_SECONDS": "3600",
            "CREDITBOT_FETCH_TIMEOUT": "120",
            "CREDITBOT_STOP_GRACE_SECONDS": "2",
        }
        bot = BotProcess(tmp_path, env)
        deadline = time_module.monotonic() + 20
        while fake.state.count("deepseek") == 0 and time_module.monotonic() < deadline:
            time_module.sleep(0.1)
        time_module.sleep(0.5)  # the poll now waits on the silent provider
        started = time_module.monotonic()
        bot.proc.send_signal(stop_signal)
        code = bot.proc.wait(timeout=15)
        took = time_module.monotonic() - started
    finally:
        silent.close()
    err = "".join(bot.err)
    assert code == 0, err
    assert took < 2 + 5, took
    assert "Traceback" not in err
    with sqlite3.connect(tmp_path / "data" / "creditbot.db") as db:
        stored = db.execute("SELECT account FROM readings WHERE ok").fetchall()
    assert ("ds",) in stored  # the account that answered keeps its reading


async def test_stopping_while_a_chat_answer_waits_on_a_provider_ends_within_the_grace(tmp_path: Path) -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    account = make_account("stuck", "deepseek", "http://provider.test/deepseek")
    config = AppConfig(make_settings(tmp_path, fetch_timeout=120, CREDITBOT_STOP_GRACE_SECONDS=1), (account,), "t")
    store = await Store.open(config.settings.database_url)
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(never)) as http:
            runtime = make_runtime(config, store, http, [])
            await store.readings.add_reading(
                Reading("stuck", "deepseek", datetime.now(UTC), error="earlier", error_kind=ErrorKind.UNAVAILABLE)
            )
            # A chat answer gives up waiting after its budget; the fetch goes on in the background.
            await runtime.monitor.views(["stuck"], wait=0.1)
            started = time_module.monotonic()
            await runtime.stop()  # no TimeoutError: the background fetch is cancelled within the grace
            assert time_module.monotonic() - started < 1 + 5
    finally:
        await store.close()
