"""The spike alert's driver over the wire: the spiking account's breakdown is asked for again before the driver
is named, within the chat answer time, and ordinary polls ask for nothing more."""

from __future__ import annotations

import asyncio
import time as clock_time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.breakdown import Dimension
from bot.config import AppConfig
from bot.messages import Message
from bot.runtime import Runtime
from bot.store import Store
from tests.conftest import make_account, make_runtime, make_settings
from tests.fake_breakdown import CostLine, FakeBreakdown, FakeBreakdownServer
from tests.test_breakdown_alerts import NOW, TODAY, UTC_CHANNEL, seed_readings, spend_of, spike_history
from tests.test_runtime import Clock, RecordingAdapter

D = Decimal
MEDIAN_OUTPUT = [D("5.00"), D("5.50"), D("6.10"), D("6.10"), D("6.40"), D("7.00"), D("8.00")]  # median 6.10


def lines(output_today: Decimal) -> list[CostLine]:
    """Seven ordinary days and today, when gpt-4o's output line costs `output_today`."""
    days: list[CostLine] = []
    for n, output in enumerate(MEDIAN_OUTPUT, start=1):
        day = TODAY - timedelta(days=n)
        days += [
            CostLine(day, "gpt-4o", "output", output),
            CostLine(day, "gpt-4o", "input", D(3)),
            CostLine(day, "o1", "output", D(30)),
        ]
    # o1 is today's largest entry, but rose less over its median (+$32) than a $41.20 output line (+$35.10).
    return [
        *days,
        CostLine(TODAY, "gpt-4o", "output", output_today),
        CostLine(TODAY, "gpt-4o", "input", D(17)),
        CostLine(TODAY, "o1", "output", D(62)),
    ]


@pytest.fixture
def fake() -> Iterator[FakeBreakdownServer]:
    with FakeBreakdownServer(FakeBreakdown(openai=lines(D("2.00")), today=TODAY)) as server:
        yield server


def runtime_at(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeBreakdownServer, clock: Clock, **settings: Any
) -> tuple[Runtime, RecordingAdapter]:
    account = make_account("oa", "openai", fake.base_url("openai"))
    config = AppConfig(make_settings(tmp_path, **settings), (account,), "test", channels=(UTC_CHANNEL,))
    adapter = RecordingAdapter()
    runtime = make_runtime(config, store, http, [adapter], clock=clock)
    return runtime, adapter


def spikes(adapter: RecordingAdapter) -> list[Message]:
    return [m for _, m in adapter.sent if m.footer.startswith("rule: spike")]


async def test_a_poll_names_the_driver_from_a_breakdown_fetched_when_the_spike_fires(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeBreakdownServer
) -> None:
    clock = Clock(NOW - timedelta(minutes=30))
    runtime, adapter = runtime_at(tmp_path, store, http, fake, clock)
    # Half an hour ago the poller stored today's parts, when the output line had cost $2: no spike yet.
    assert await runtime.monitor.breakdowns.refresh(runtime.monitor.accounts()) == {}
    stale = (await store.breakdowns.parts(["oa"], Dimension.LINE_ITEM, TODAY, TODAY))["oa"]
    assert {p.key: p.cost for p in stale}["gpt-4o, output"] == D("2.00")
    fake.state.openai = lines(D("41.20"))  # $120.20 today, over 3 x the $39.10 median
    clock.now = NOW  # within the hour: the poller would not ask again yet
    try:
        events = await runtime.poll()
    finally:
        await runtime.stop(grace=1)
    assert [(e.account, e.rule.value) for e in events] == [("oa", "spike")]
    (alert,) = spikes(adapter)
    assert alert.title == "oa: more than 3x the usual daily spend"
    assert alert.text == "gpt-4o output: $41.20 today, 7-day median $6.10"


async def test_a_provider_that_has_not_broken_today_down_leaves_the_alert_without_a_driver(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeBreakdownServer
) -> None:
    fake.state.lag_today = True
    await seed_readings(store, spend_of(spike_history()))
    runtime, adapter = runtime_at(tmp_path, store, http, fake, Clock(NOW), cache_seconds=3600)
    await runtime.alerting.evaluate(await runtime.monitor.views(stored_only=True))
    await runtime.dispatch()
    (alert,) = spikes(adapter)
    assert alert.text == ""
    assert fake.state.count("openai", "/costs") > 0  # it was asked


async def test_a_slow_breakdown_leaves_the_alert_on_time_without_a_driver(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeBreakdownServer
) -> None:
    fake.state.openai = lines(D("41.20"))
    await seed_readings(store, spend_of(spike_history()))
    runtime, adapter = runtime_at(tmp_path, store, http, fake, Clock(NOW), cache_seconds=3600, answer_seconds=0.3)
    views = await runtime.monitor.views(stored_only=True)
    fake.state.lock.acquire()  # the fake answers nothing until released
    try:
        started = clock_time.monotonic()
        async with asyncio.timeout(10):
            events = await runtime.alerting.evaluate(views)
        took = clock_time.monotonic() - started
    finally:
        fake.state.lock.release()
    assert [(e.account, e.rule.value) for e in events] == [("oa", "spike")]
    assert took < 2  # the answer time (0.3 s) and the alert's own work, not the fetch timeout (5 s)
    (queued,) = await store.outbox.existing_keys([f"alert:{UTC_CHANNEL.key}:{events[0].key}"])
    assert queued
    await runtime.dispatch()
    (alert,) = spikes(adapter)
    assert alert.text == ""
    # The fetch went on in the background and stored today, for the summary and `credits breakdown`.
    if running := runtime.monitor.breakdowns.running():
        await asyncio.wait(running, timeout=5)
    parts = (await store.breakdowns.parts(["oa"], Dimension.LINE_ITEM, TODAY, TODAY))["oa"]
    assert {p.key: p.cost for p in parts}["gpt-4o, output"] == D("41.20")
    await runtime.stop(grace=1)


async def test_an_ordinary_poll_asks_for_no_breakdown(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeBreakdownServer
) -> None:
    flat: dict[date, Decimal] = {TODAY - timedelta(days=n): D(39) for n in range(8)}
    await seed_readings(store, flat)
    runtime, _adapter = runtime_at(tmp_path, store, http, fake, Clock(NOW), cache_seconds=3600)
    assert await runtime.alerting.evaluate(await runtime.monitor.views(stored_only=True)) == []
    assert fake.state.requests == []
