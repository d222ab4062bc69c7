"""A day the provider has not reported is unknown, never $0: today's bucket while the data lags, and month to
date says up to which day it counts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

from bot.channels import Channel
from bot.config import AppConfig, load_config
from bot.messages import section, summary_message
from bot.models import AccountView, DailySpend, Status, Thresholds
from bot.money import Money
from bot.store import Store
from tests.conftest import (
    TEST_KEYS,
    build_monitor,
    fetch,
    fetch_request,
    make_account,
    make_runtime,
    make_settings,
)
from tests.fakes import FakeProviderServer, utc_today
from tests.test_cli import run_cli
from tests.test_runtime import RecordingAdapter


async def test_anthropic_asks_for_today_and_reports_its_spend_so_far(fake: FakeProviderServer) -> None:
    today = utc_today()
    fake.state.anthropic_daily_cents = {today - timedelta(days=1): Decimal(250), today: Decimal("123.5")}
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "anthropic", fake.base_url("anthropic"), since=today - timedelta(days=40))
        report = await fetch("anthropic", request)
    assert report.spent_today == Money(Decimal("1.235"), "USD")
    assert report.daily_spend[-1].day == today
    assert report.spent_month_through == today
    assert any("Priority Tier" in note for note in report.notes)


async def test_an_empty_bucket_for_today_is_unknown_and_for_a_past_day_is_zero(fake: FakeProviderServer) -> None:
    today = utc_today()
    fake.state.anthropic_daily_cents = {today - timedelta(days=2): Decimal(100)}
    fake.state.openai_daily = {today - timedelta(days=2): Decimal(1)}
    async with httpx.AsyncClient() as client:
        for provider in ("anthropic", "openai"):
            request = fetch_request(client, provider, fake.base_url(provider), since=today - timedelta(days=40))
            report = await fetch(provider, request)
            days = {d.day: d.amount.amount for d in report.daily_spend}
            assert report.spent_today is None, provider
            assert today not in days, provider
            assert days[today - timedelta(days=1)] == 0, provider  # a completed day with an empty bucket
            assert days[today - timedelta(days=2)] == 1, provider
            expected_through = today - timedelta(days=1) if today.day > 1 else None
            assert report.spent_month_through == expected_through, provider


def test_check_json_says_today_is_unknown_and_how_far_the_month_counts(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    today = utc_today()
    fake.state.openai_daily = {today - timedelta(days=i): Decimal("1.10") for i in range(1, 5)}
    toml = f"""
[[accounts]]
name = "openai-main"
provider = "openai"
api_key = "{TEST_KEYS["openai"]}"
base_url = "{fake.base_url("openai")}"
"""
    result = run_cli(tmp_path, "check", "--json", toml=toml)
    (account,) = json.loads(result.stdout)["accounts"]
    assert account["spent_today"] is None
    if today.day > 1:
        assert account["spent_month_through"] == str(today - timedelta(days=1))
        days_this_month = min(4, today.day - 1)
        assert account["spent_month"] == float(Decimal("1.10") * days_this_month)
    else:
        assert (account["spent_month"], account["spent_month_through"]) == (None, None)


def test_messages_say_not_reported_yet_and_through_which_day() -> None:
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    series = tuple(DailySpend(now.date() - timedelta(days=i), Money(Decimal(2), "USD")) for i in range(19, 0, -1))
    view = AccountView(
        make_account("openai-main", "openai", "https://api.openai.com"),
        Status.OK,
        Thresholds(),
        fetched_at=now,
        currency="USD",
        spent_month=Money(Decimal(38), "USD"),
        spent_month_through=now.date() - timedelta(days=1),
        spend_series=series,
    )
    fields = {f.label: f.value for f in section(view).fields}
    assert fields["Today"] == "not reported yet"
    assert fields["Month to date"] == "$38.00 (through Nov 19)"


def _infos(**balances: str) -> list[dict[str, str]]:
    return [
        {"currency": c, "total_balance": v, "granted_balance": "0.00", "topped_up_balance": v}
        for c, v in balances.items()
    ]


async def test_a_deepseek_account_keeps_its_currency_while_deepseek_lists_it(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    account = make_account("ds", "deepseek", fake.base_url("deepseek"))
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}")
    try:
        async with httpx.AsyncClient() as http:
            monitor = build_monitor(tmp_path, store, http, [account])
            shown = []
            for infos in (
                _infos(CNY="71.46", USD="0.00"),
                _infos(CNY="71.46", USD="3.00"),  # a USD top-up: the account stays in CNY
                _infos(CNY="0.00", USD="3.00"),  # CNY spent: still listed, still CNY
                _infos(USD="3.00"),  # CNY gone from the answer: now USD
                _infos(CNY="5.00", USD="3.00"),  # CNY back: the account stays in USD
            ):
                fake.state.deepseek_infos = infos
                (view,) = await monitor.views(refresh=True)
                shown.append((view.currency, view.balance.amount if view.balance else None))
    finally:
        await store.close()
    assert shown == [
        ("CNY", Decimal("71.46")),
        ("CNY", Decimal("71.46")),
        ("CNY", Decimal("0.00")),
        ("USD", Decimal("3.00")),
        ("USD", Decimal("3.00")),
    ]


def test_zero_config_deepseek_can_name_its_currency(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DEEPSEEK_API_KEY=TEST_KEYS["deepseek"], DEEPSEEK_CURRENCY="usd")
    (account,) = load_config(settings, environ={}).accounts
    assert (account.provider, account.currency) == ("deepseek", "USD")
    env = {"DEEPSEEK_API_KEY": TEST_KEYS["deepseek"], "DEEPSEEK_CURRENCY": "dollars"}
    bad = run_cli(tmp_path, "check", env=env)  # refused before any request is made
    assert bad.returncode == 78
    assert "DEEPSEEK_CURRENCY" in bad.stderr
    assert "Traceback" not in bad.stderr


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_the_summary_on_the_first_compares_yesterday_with_the_day_before_not_two_months(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    november = [date(2025, 11, 1) + timedelta(days=i) for i in range(30)]
    fake.state.openai_daily = {day: Decimal(10) for day in november}
    fake.state.openai_daily[date(2025, 11, 29)] = Decimal(8)
    fake.state.openai_daily[date(2025, 12, 1)] = Decimal(2)  # the 1st's spend so far
    account = make_account("openai-main", "openai", fake.base_url("openai"))
    config = AppConfig(make_settings(tmp_path), (account,), "test")
    channel = Channel("slack", "C1", daily_summary=time(9, 0), timezone="UTC", alerts=None)
    clock = Clock(datetime(2025, 11, 30, 9, 0, tzinfo=UTC))
    adapter = RecordingAdapter()
    store = await Store.open(config.settings.database_url)
    try:
        async with httpx.AsyncClient() as http:
            runtime = make_runtime(config, store, http, [adapter], clock=clock)
            await runtime.monitor.refresh()
            await runtime.send_summaries([channel])
            clock.now = datetime(2025, 12, 1, 9, 0, tzinfo=UTC)
            await runtime.monitor.refresh()
            await runtime.send_summaries([channel])
    finally:
        await store.close()
    first, second = (dict((f.label, f.value) for f in m.sections[0].fields) for _, m in adapter.sent)
    assert first["Yesterday"] == "$8.00 (-$2.00 on the day before)"
    assert first["Month to date"] == "$298.00"
    assert second["Yesterday"] == "$10.00 (+$2.00 on the day before)"
    assert second["Month to date"] == "$2.00"
    assert "Change" not in second  # never this month's spend against last month's


async def test_a_reported_balance_changes_against_the_reading_a_day_earlier(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    fake.state.deepseek_infos = _infos(CNY="150.00")
    config = AppConfig(make_settings(tmp_path), (make_account("ds", "deepseek", fake.base_url("deepseek")),), "t")
    clock = Clock(datetime.now(UTC) - timedelta(days=1))
    adapter = RecordingAdapter()
    store = await Store.open(config.settings.database_url)
    try:
        async with httpx.AsyncClient() as http:
            runtime = make_runtime(config, store, http, [adapter], clock=clock)
            await runtime.monitor.refresh()
            clock.now += timedelta(hours=12)
            fake.state.deepseek_infos = _infos(CNY="130.00")
            await runtime.monitor.refresh()
            clock.now += timedelta(hours=12, minutes=20)
            fake.state.deepseek_infos = _infos(CNY="110.00")
            await runtime.monitor.refresh()
            message = await runtime.summary_message()
    finally:
        await store.close()
    fields = {f.label: f.value for f in message.sections[0].fields}
    assert fields["Change"] == "-¥40.00 in 24 h"


def test_a_channel_in_another_zone_sees_utc_days_and_the_utc_month_named() -> None:
    # 20:00 on 31 December in Los Angeles is 04:00 on 1 January UTC: the provider's month is January.
    now = datetime(2026, 1, 1, 4, 0, tzinfo=UTC)
    view = AccountView(
        make_account("openai-main", "openai", "https://api.openai.com"),
        Status.OK,
        Thresholds(),
        fetched_at=now,
        currency="USD",
        spent_today=Money(Decimal("0.50"), "USD"),
        spent_month=Money(Decimal("0.50"), "USD"),
        spent_month_through=now.date(),
    )
    message = summary_message([view], now, {}, {}, None, zone="America/Los_Angeles")
    fields = {f.label: f.value for f in message.sections[0].fields}
    assert fields["Today (UTC)"] == "$0.50"
    assert fields["Month to date (UTC)"] == "$0.50 (January, UTC)"
    same_zone = summary_message([view], now, {}, {}, None)
    assert {f.label for f in same_zone.sections[0].fields} >= {"Today", "Month to date"}
