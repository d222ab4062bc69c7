"""Breakdowns where the team already looks: the daily summary's top models of yesterday, the spend-spike
alert naming the line item that spiked, and `creditbot_spend_by_model` for the top 10 models only."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from bot.breakdown import BreakdownPart, BreakdownReport, Dimension
from bot.channels import Channel
from bot.config import AppConfig
from bot.messages import Message
from bot.metrics import Metrics
from bot.models import DailySpend, ProviderReport, Reading, Severity
from bot.money import Money
from bot.monitor import Monitor
from bot.store import Store
from tests.conftest import make_account, make_runtime, make_settings
from tests.test_runtime import Clock, RecordingAdapter

D = Decimal
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
YESTERDAY = TODAY - timedelta(days=1)
UTC_CHANNEL = Channel("slack", "C1", daily_summary=time(9, 0), timezone="UTC", alerts=Severity.WARNING)
TOKYO_CHANNEL = Channel("slack", "C2", daily_summary=time(9, 0), timezone="Asia/Tokyo", alerts=Severity.WARNING)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}")
    # Nothing here may reach a provider: every account points at a closed port and readings are fresh.
    async with httpx.AsyncClient() as http:
        yield {"store": store, "http": http, "tmp": tmp_path}
    await store.close()


def config(env: dict[str, Any], channels: tuple[Channel, ...] = ()) -> AppConfig:
    accounts = (
        make_account("oa", "openai", "http://127.0.0.1:9"),
        make_account("ds", "deepseek", "http://127.0.0.1:9"),
        make_account("or", "openrouter", "http://127.0.0.1:9"),
    )
    return AppConfig(make_settings(env["tmp"], cache_seconds=3600), accounts, "test", channels=channels)


async def seed_readings(store: Store, spend: dict[date, Decimal], *, spender: str = "oa") -> None:
    """A fresh reading of each account: the daily spend of `spender`, DeepSeek's balance otherwise."""
    provider = {"oa": "openai", "ds": "deepseek", "or": "openrouter"}[spender]
    series = tuple(DailySpend(day, Money(amount, "USD")) for day, amount in sorted(spend.items()))
    today = spend.get(TODAY)
    report = ProviderReport(
        currency="USD",
        spent_today=Money(today, "USD") if today is not None else None,
        daily_spend=series,
    )
    await store.readings.add_reading(Reading(spender, provider, NOW, report=report), series)
    if spender != "ds":
        balance = ProviderReport(currency="CNY", balance=Money(D(500), "CNY"))
        await store.readings.add_reading(Reading("ds", "deepseek", NOW, report=balance))


Costs = dict[date, dict[str, Decimal]]


async def seed_parts(
    store: Store, by: dict[Dimension, Costs], *, days: list[date] | None = None, account: str = "oa"
) -> None:
    """One fetch's breakdown (every dimension at once, as the store keeps it) of `days`, by default the days
    with costs; final, so that nothing is fetched again."""
    answered = days if days is not None else sorted({day for costs in by.values() for day in costs})
    parts = tuple(
        BreakdownPart(day, dimension, key, key, cost)
        for dimension, costs in by.items()
        for day, entries in costs.items()
        for key, cost in entries.items()
    )
    report = BreakdownReport("USD", tuple(answered), parts, frozenset(by))
    await store.breakdowns.save(account, answered, report, settled_before=TODAY + timedelta(days=1), now=NOW)


def fields(message: Message, account: str) -> dict[str, str]:
    (section,) = [s for s in message.sections if s.account == account]
    return {f.label: f.value for f in section.fields}


# --- the daily summary ----------------------------------------------------------------------------------------


async def test_summary_shows_yesterdays_top_three_models_with_share_and_median_change(env: dict[str, Any]) -> None:
    earlier = {YESTERDAY - timedelta(days=n): n for n in range(1, 8)}
    costs: Costs = {
        # gpt-4o costs 6..12 on the seven days before: median 9; the mini 3 each day; o1 never.
        day: {"gpt-4o": D(5 + n), "gpt-4o-mini": D(3)}
        for day, n in earlier.items()
    }
    costs[YESTERDAY] = {"gpt-4o": D("12.40"), "gpt-4o-mini": D(4), "o1": D("2.60"), "tts-1": D("0.50")}
    costs[YESTERDAY - timedelta(days=8)] = {"gpt-4o": D(1000)}  # outside the 7 days: no weight on the median
    await seed_parts(env["store"], {Dimension.MODEL: costs})
    # Yesterday's spend is $20: the parts leave $0.50 unattributed, and the shares are of the $20.
    await seed_readings(env["store"], {YESTERDAY: D(20), TODAY: D(1)})
    runtime = make_runtime(config(env), env["store"], env["http"], [], clock=Clock(NOW))

    message = await runtime.summary_message(UTC_CHANNEL)

    assert fields(message, "oa")["Top yesterday"] == (
        "gpt-4o $12.40 (62%, +$3.40 vs 7-day median) · "
        "gpt-4o-mini $4.00 (20%, +$1.00 vs 7-day median) · "
        "o1 $2.60 (13%, +$2.60 vs 7-day median)"
    )
    assert not any(label.startswith("Top") for label in fields(message, "ds"))  # DeepSeek: no breakdown
    # Providers count in UTC days: a channel elsewhere is told so, as for the other day fields.
    tokyo = await runtime.summary_message(TOKYO_CHANNEL)
    assert fields(tokyo, "oa")["Top yesterday (UTC)"].startswith("gpt-4o $12.40 (62%")


async def test_summary_without_a_breakdown_of_yesterday_says_nothing_of_drivers(env: dict[str, Any]) -> None:
    # Only the day before yesterday is broken down: yesterday's drivers are unknown, not zero.
    await seed_parts(env["store"], {Dimension.MODEL: {YESTERDAY - timedelta(days=1): {"gpt-4o": D(9)}}})
    await seed_readings(env["store"], {YESTERDAY: D(20)})
    runtime = make_runtime(config(env), env["store"], env["http"], [], clock=Clock(NOW))
    message = await runtime.summary_message(UTC_CHANNEL)
    assert "Top yesterday" not in fields(message, "oa")
    assert "Spend" in fields(message, "oa")


# --- the spend-spike alert --------------------------------------------------------------------------------------


def spike_history() -> dict[date, dict[str, Decimal]]:
    """Line items over the seven days before today and today: the output line rose most above its median."""
    output = [D("5.00"), D("5.50"), D("6.10"), D("6.10"), D("6.40"), D("7.00"), D("8.00")]  # median 6.10
    costs = {
        TODAY - timedelta(days=n): {
            "gpt-4o-2024-08-06, output": cost,
            "gpt-4o-2024-08-06, input": D(3),
            "o1, output": D(30),
        }
        for n, cost in enumerate(output, start=1)
    }
    # o1 is today's largest entry but rose less over its median (+$32) than the output line (+$35.10).
    costs[TODAY] = {
        "gpt-4o-2024-08-06, output": D("41.20"),
        "gpt-4o-2024-08-06, input": D(17),
        "o1, output": D(62),
    }
    return costs


EIGHT = [TODAY - timedelta(days=n) for n in range(9)]  # what a spike alert refreshes: stored as final


def spend_of(costs: dict[date, dict[str, Decimal]]) -> dict[date, Decimal]:
    """The daily spend the parts add up to."""
    return {day: sum(entries.values(), D(0)) for day, entries in costs.items()}


async def spike_runtime(
    env: dict[str, Any], spend: dict[date, Decimal], *, spender: str = "oa"
) -> tuple[Any, RecordingAdapter]:
    await seed_readings(env["store"], spend, spender=spender)
    adapter = RecordingAdapter()
    runtime = make_runtime(config(env, (UTC_CHANNEL,)), env["store"], env["http"], [adapter], clock=Clock(NOW))
    return runtime, adapter


async def spike_alerts(runtime: Any, adapter: RecordingAdapter) -> list[Message]:
    await runtime.alerting.evaluate(await runtime.monitor.views(stored_only=True))
    await runtime.dispatch()
    return [m for _, m in adapter.sent if m.footer.startswith("rule: spike")]


async def test_spike_alert_names_the_line_item_that_spiked_and_fires_once(env: dict[str, Any]) -> None:
    # By model the whole of gpt-4o rose more: the line item, where the provider gives one, is the answer.
    by_model = {TODAY: {"gpt-4o-2024-08-06": D("58.20")}}
    await seed_parts(env["store"], {Dimension.LINE_ITEM: spike_history(), Dimension.MODEL: by_model}, days=EIGHT)
    # Today's $120.20 is over 3 × the $39.10 median of the days before: the rule fires.
    runtime, adapter = await spike_runtime(env, spend_of(spike_history()))

    (alert,) = await spike_alerts(runtime, adapter)

    assert alert.title == "oa: more than 3x the usual daily spend"
    assert alert.text == "gpt-4o-2024-08-06 output: $41.20 today, 7-day median $6.10"
    # The next poll finds the episode open: nothing again.
    assert await spike_alerts(runtime, adapter) == [alert]


async def test_spike_alert_falls_back_to_the_model_without_line_items(env: dict[str, Any]) -> None:
    # OpenRouter breaks spend down by model only.
    history = {day: {"gpt-4o": D(6), "o1": D(2)} for day in (TODAY - timedelta(days=n) for n in range(1, 8))}
    history[TODAY] = {"gpt-4o": D(20), "o1": D(40)}
    await seed_parts(env["store"], {Dimension.MODEL: history}, days=EIGHT, account="or")
    runtime, adapter = await spike_runtime(env, spend_of(history), spender="or")
    (alert,) = await spike_alerts(runtime, adapter)
    assert alert.title == "or: more than 3x the usual daily spend"
    assert alert.text == "o1: $40.00 today, 7-day median $2.00"


async def test_spike_alert_of_a_provider_without_breakdown_stays_as_it_was(env: dict[str, Any]) -> None:
    # DeepSeek breaks nothing down: the alert is as before, and nobody is asked for a breakdown.
    runtime, adapter = await spike_runtime(env, spend_of(spike_history()), spender="ds")
    (alert,) = await spike_alerts(runtime, adapter)
    assert alert.title == "ds: more than 3x the usual daily spend"
    assert alert.text == ""


# --- a failing breakdown store costs the alerts and the summary nothing ----------------------------------------


def disk_error() -> Exception:
    return OperationalError("SELECT", {}, sqlite3.OperationalError("disk I/O error"))


@pytest.mark.parametrize("failing", ["parts", "settled"])  # reading the driver; refreshing before it
@pytest.mark.parametrize("error", [disk_error, lambda: RuntimeError("bug")], ids=["database", "other"])
async def test_a_failing_breakdown_store_leaves_every_alert_and_the_summary_intact(
    env: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failing: str,
    error: Callable[[], Exception],
) -> None:
    await seed_parts(env["store"], {Dimension.LINE_ITEM: spike_history()}, days=EIGHT)
    await seed_readings(env["store"], spend_of(spike_history()))
    accounts = (
        make_account("oa", "openai", "http://127.0.0.1:9"),
        make_account("ds", "deepseek", "http://127.0.0.1:9", warn_below=D(1000)),  # its ¥500 fires too
    )
    settings = make_settings(env["tmp"], cache_seconds=3600)
    adapter = RecordingAdapter()
    app = AppConfig(settings, accounts, "test", channels=(UTC_CHANNEL,))
    runtime = make_runtime(app, env["store"], env["http"], [adapter], clock=Clock(NOW))

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise error()

    monkeypatch.setattr(env["store"].breakdowns, failing, broken)
    events = await runtime.alerting.evaluate(await runtime.monitor.views(stored_only=True))
    await runtime.dispatch()

    assert sorted((e.account, e.rule.value) for e in events) == [("ds", "balance"), ("oa", "spike")]
    alerts = {m.footer.split(" ·")[0]: m for _, m in adapter.sent}
    assert alerts["rule: spike"].title == "oa: more than 3x the usual daily spend"
    assert alerts["rule: spike"].text == ""
    assert "ds" in alerts["rule: balance"].title
    left_out = [r.getMessage() for r in caplog.records if "drivers left out" in r.getMessage()]
    assert len(left_out) == 1
    assert ("disk I/O error" if error is disk_error else "RuntimeError: bug") in left_out[0]

    monkeypatch.setattr(env["store"].breakdowns, "parts", broken)  # the summary reads the parts alone
    message = await runtime.summary_message(UTC_CHANNEL)
    assert "Spend" in fields(message, "oa")
    assert not any(label.startswith("Top") for label in fields(message, "oa"))
    assert any("summary drivers left out" in r.getMessage() for r in caplog.records)


# --- metrics --------------------------------------------------------------------------------------------------


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def model_series(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    (family,) = [f for f in metrics.registry.collect() if f.name == "creditbot_spend_by_model"]
    return {(s.labels["account"], s.labels["currency"], s.labels["model"]): s.value for s in family.samples}


async def test_spend_by_model_shows_the_top_ten_of_the_month_and_drops_stale_labels(
    env: dict[str, Any], metrics: Metrics
) -> None:
    store: Store = env["store"]
    month_start = TODAY.replace(day=1)
    # Twelve models this month, model-01 the largest; last month's spend counts for nothing.
    costs: Costs = {
        day: {f"model-{m:02d}": D(13 - m) for m in range(1, 13)}
        for day in (month_start + timedelta(days=n) for n in range((TODAY - month_start).days + 1))
    }
    costs[month_start - timedelta(days=1)] = {"model-12": D(10_000)}
    # Every day the poller keeps current is stored and final: upkeep fetches nothing.
    window = [TODAY - timedelta(days=n) for n in range(0, 31)]
    await seed_parts(store, {Dimension.MODEL: costs}, days=window)
    monitor = Monitor(config(env), store, env["http"], clock=Clock(NOW))
    monitor.metrics = metrics

    await monitor.upkeep()

    series = model_series(metrics)
    days = (TODAY - month_start).days + 1
    assert series == {("oa", "USD", f"model-{m:02d}"): float((13 - m) * days) for m in range(1, 11)}
    assert 'creditbot_spend_by_model{account="oa",currency="USD",model="model-01"}' in metrics.render().decode()

    # model-12 spends $1000 today: it enters the top ten and model-10 leaves it, label set and all.
    today_parts = {f"model-{m:02d}": D(13 - m) for m in range(1, 12)} | {"model-12": D(1000)}
    await seed_parts(store, {Dimension.MODEL: {TODAY: today_parts}})
    await monitor.upkeep()
    series = model_series(metrics)
    assert len(series) == 10
    assert ("oa", "USD", "model-12") in series
    assert ("oa", "USD", "model-10") not in series

    # The account is removed from the configuration: its series go with it.
    monitor.config = replace(monitor.config, accounts=monitor.config.accounts[1:])
    await monitor.upkeep()
    assert model_series(metrics) == {}
