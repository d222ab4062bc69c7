"""The runtime in-process: alerts delivered once across restarts, summaries and catch-up, quiet hours,
snoozes, retries, and the command layer with permissions and audit."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.console import ConsoleAdapter
from bot.adapter import BaseAdapter, DeliveryError
from bot.channels import Channel
from bot.config import AppConfig
from bot.handler import Requester
from bot.messages import Message
from bot.models import Severity
from bot.runtime import Runtime
from bot.store import NewMessage, Store
from tests.conftest import make_account, make_runtime, make_settings
from tests.fakes import FakeProviderServer

D = Decimal


class Clock:
    """A settable clock for the runtime."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RecordingAdapter(BaseAdapter):
    """A stand-in chat platform that records what it was asked to send; may fail on demand."""

    def __init__(self, platform: str = "slack") -> None:
        super().__init__()
        self.platform = platform  # type: ignore[misc]
        self.sent: list[tuple[str, Message]] = []
        self.failures: list[DeliveryError] = []

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((channel_id, message))


@pytest.fixture
async def env(tmp_path: Path, fake: FakeProviderServer) -> AsyncIterator[dict[str, Any]]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}")
    async with httpx.AsyncClient() as http:
        yield {"store": store, "http": http, "fake": fake, "tmp": tmp_path}
    await store.close()


def runtime_for(
    env: dict[str, Any], clock: Clock, channels: tuple[Channel, ...], adapter: Any, **account: Any
) -> Runtime:
    fake: FakeProviderServer = env["fake"]
    accounts = (make_account("ds", "deepseek", fake.base_url("deepseek"), **account),)
    config = AppConfig(make_settings(env["tmp"]), accounts, "test", channels=channels)
    return make_runtime(config, env["store"], env["http"], [adapter], clock=clock)


SLACK = Channel("slack", "C1", daily_summary=time(9, 0), timezone="UTC", alerts=Severity.WARNING)
ALERTS_ONLY = Channel("slack", "C1", daily_summary=None, alerts=Severity.WARNING)


async def test_alert_fires_once_and_survives_a_restart(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (SLACK,), adapter, warn_below=D(200), critical_below=D(50))
    events = await runtime.poll()
    assert [(e.rule.value, e.kind) for e in events] == [("balance", "fired")]
    alerts = [m for _, m in adapter.sent if m.footer.startswith("rule:")]
    assert len(alerts) == 1
    assert alerts[0].severity is Severity.WARNING
    assert "below ¥200.00" in alerts[0].title
    await runtime.poll()
    # A new process on the same store: still nothing repeated.
    restarted = runtime_for(env, clock, (SLACK,), adapter, warn_below=D(200), critical_below=D(50))
    assert await restarted.poll() == []
    assert len([m for _, m in adapter.sent if m.footer.startswith("rule:")]) == 1


async def test_top_up_recovery_sends_one_recovered_message(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (SLACK,), adapter, warn_below=D(200))
    await runtime.poll()
    env["fake"].state.deepseek_infos = [{"currency": "CNY", "total_balance": "500.00"}]
    clock.now += timedelta(minutes=5)
    events = await runtime.poll()
    assert [(e.rule.value, e.kind) for e in events] == [("balance", "recovered")]
    titles = [m.title for _, m in adapter.sent]
    assert sum("recovered" in t for t in titles) == 1


async def test_quiet_hours_delay_warnings_but_not_critical(env: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    start = (now - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    quiet = Channel("slack", "C2", daily_summary=None, alerts=Severity.WARNING, quiet_hours=(start, end))
    clock = Clock(now)
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (quiet,), adapter, warn_below=D(200))
    await runtime.poll()
    assert adapter.sent == []  # the warning waits
    clock.now = now + timedelta(hours=2, minutes=1)
    await runtime.dispatch()
    assert len(adapter.sent) == 1
    critical = runtime_for(
        env,
        Clock(now),
        (Channel("slack", "C3", daily_summary=None, quiet_hours=(start, end)),),
        RecordingAdapter(),
        critical_below=D(500),
    )
    await critical.poll()
    assert len(critical.adapters["slack"].sent) == 1  # type: ignore[attr-defined]


async def test_snoozed_account_is_not_announced(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (SLACK,), adapter, warn_below=D(200))
    await env["store"].settings.set_snooze("ds", clock.now + timedelta(hours=24), "test")
    await runtime.poll()
    assert [m for _, m in adapter.sent if m.footer.startswith("rule:")] == []


async def test_failed_delivery_is_retried_and_arrives_once(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    adapter.failures = [DeliveryError("HTTP 503"), DeliveryError("rate limited", retry_after=30)]
    runtime = runtime_for(env, clock, (ALERTS_ONLY,), adapter, warn_below=D(200))
    await runtime.poll()
    assert adapter.sent == []
    clock.now += timedelta(seconds=31)
    await runtime.dispatch()
    assert adapter.sent == []  # second failure: the platform asked for 30 s more
    clock.now += timedelta(seconds=31)
    await runtime.dispatch()
    await runtime.dispatch()
    assert len(adapter.sent) == 1
    (item,) = await env["store"].outbox.items("alert")
    assert (item.status, item.attempts) == ("sent", 3)


async def test_abandoned_claim_is_retried_after_the_lease(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (SLACK,), adapter)
    store: Store = env["store"]
    await store.outbox.enqueue(
        NewMessage("alert:x", "slack", "C1", "alert", "warning", Message("t", "s").to_json(), clock.now),
        now=clock.now,
    )
    (item,) = await store.outbox.open_messages(clock.now, timedelta(minutes=10))
    assert await store.outbox.claim(item, clock.now, timedelta(minutes=10))  # then the process "crashes"
    await runtime.dispatch()
    assert adapter.sent == []
    clock.now += timedelta(minutes=11)
    await runtime.dispatch()
    assert len(adapter.sent) == 1


async def test_a_message_left_claimed_by_a_crash_holds_back_its_channel_until_the_lease_ends(
    env: dict[str, Any],
) -> None:
    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (SLACK,), adapter)
    store: Store = env["store"]
    lease = timedelta(minutes=10)
    for key, channel in (("alert:fired", "C1"), ("alert:recovered", "C1"), ("alert:other", "C2")):
        message = Message(key, key).to_json()
        await store.outbox.enqueue(
            NewMessage(key, "slack", channel, "alert", "warning", message, clock.now), now=clock.now
        )
    fired = next(i for i in await store.outbox.open_messages(clock.now, lease) if i.key == "alert:fired")
    assert await store.outbox.claim(fired, clock.now, lease)  # then that process dies while sending it
    await runtime.dispatch()
    assert [m.title for _, m in adapter.sent] == ["alert:other"]  # C1 waits: the recovery stays behind
    clock.now += timedelta(minutes=11)
    await runtime.dispatch()
    assert [m.title for _, m in adapter.sent] == ["alert:other", "alert:fired", "alert:recovered"]


async def test_summary_catch_up_sends_once_per_day(env: dict[str, Any]) -> None:
    today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    clock = Clock(today)
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (SLACK,), adapter)
    await runtime.poll()  # the first poll catches up the 09:00 summary
    summaries = [m for _, m in adapter.sent if m.title.startswith("Daily")]
    assert len(summaries) == 1
    assert summaries[0].sections[0].account == "ds"
    restarted = runtime_for(env, clock, (SLACK,), adapter)
    await restarted.poll()
    await restarted.send_summary(SLACK)
    assert len([m for _, m in adapter.sent if m.title.startswith("Daily")]) == 1
    clock.now += timedelta(days=1)
    await restarted.send_summary(SLACK)
    second = [m for _, m in adapter.sent if m.title.startswith("Daily")]
    assert len(second) == 2
    assert any(f.label == "Change" for f in second[1].sections[0].fields)


async def test_no_catch_up_before_the_summary_time(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC).replace(hour=8, minute=0))
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (SLACK,), adapter)
    await runtime.poll()
    assert not [m for _, m in adapter.sent if m.title.startswith("Daily")]


async def test_commands_permissions_audit_and_effective_thresholds(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    runtime = runtime_for(env, clock, (SLACK,), RecordingAdapter(), warn_below=D(20))
    handler = runtime.handler
    member = Requester("slack", "U1", "C1", is_admin=False)
    admin = Requester("slack", "U2", "C1", is_admin=True, name="alice")
    reply = await handler.handle("ds", member)
    assert reply.public is False
    assert reply.message.sections[0].headline == "¥110.00 left"
    assert (await handler.handle("share", member)).public is True
    refused = await handler.handle("threshold ds 500", member)
    assert refused.message.title == "Not allowed"
    assert (await handler.handle("threshold ds 500 100", admin)).message.title == "Thresholds set"
    (view,) = await runtime.monitor.views()
    assert (view.thresholds.warn_below, view.thresholds.critical_below) == (D(500), D(100))
    assert view.thresholds.origin["warn_below"] == "chat, by slack:alice"
    assert view.status.value == "warning"
    audit = await env["store"].settings.audit_entries()
    assert [(a.command, a.user) for a in audit] == [("threshold", "alice"), ("threshold", "U1")]
    assert audit[1].detail.startswith("refused")
    bad = await handler.handle("snooze ds forever", admin)
    assert "is not a duration" in bad.message.text


class SlowAdapter(RecordingAdapter):
    """Takes a while per message and records how many sends overlapped."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.05)
            await super().send(channel_id, message, key=key)
        finally:
            self.in_flight -= 1


async def test_summary_fan_out_runs_channels_in_parallel_within_the_limit(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    channels = tuple(Channel("slack", f"C{i:02d}", daily_summary=time(9, 0)) for i in range(30))
    adapter = SlowAdapter()
    fake: FakeProviderServer = env["fake"]
    config = AppConfig(
        make_settings(env["tmp"], CREDITBOT_DELIVERY_CONCURRENCY=5),
        (make_account("ds", "deepseek", fake.base_url("deepseek")),),
        "test",
        channels=channels,
    )
    drawn = []

    async def chart(views: Any) -> bytes:
        drawn.append(views)
        return b"png"

    runtime = make_runtime(config, env["store"], env["http"], [adapter], clock=clock, charts=chart)
    assert await runtime.send_summaries(channels) == 30
    assert sorted(c for c, _ in adapter.sent) == [c.id for c in channels]
    assert 1 < adapter.peak <= 5  # in parallel, within CREDITBOT_DELIVERY_CONCURRENCY
    assert len(drawn) == 1
    assert await runtime.send_summaries(channels) == 0  # the day's summaries exist: nothing again


async def test_one_channel_whose_summary_fails_costs_the_others_nothing(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    fake: FakeProviderServer = env["fake"]
    accounts = (
        make_account("ds", "deepseek", fake.base_url("deepseek")),
        make_account("ms", "moonshot", fake.base_url("moonshot")),
    )
    good, bad = Channel("slack", "C1", accounts=("ds",)), Channel("slack", "C2", accounts=("ms",))
    config = AppConfig(make_settings(env["tmp"]), accounts, "test", channels=(good, bad))
    broken = {"ms"}

    async def chart(views: Any) -> bytes:
        if broken & {view.name for view in views}:
            raise RuntimeError("the chart of ms cannot be drawn")
        return b"png"

    adapter = RecordingAdapter()
    runtime = make_runtime(config, env["store"], env["http"], [adapter], clock=clock, charts=chart)
    assert await runtime.send_summaries((good, bad)) == 1
    assert [channel for channel, _ in adapter.sent] == ["C1"]
    broken.clear()
    assert await runtime.send_summaries((good, bad)) == 1  # the next run makes up for it, once
    assert [channel for channel, _ in adapter.sent] == ["C1", "C2"]


async def test_channels_sharing_a_summary_time_share_one_job(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    channels = (
        Channel("slack", "C1", daily_summary=time(9, 0)),
        Channel("slack", "C2", daily_summary=time(9, 0)),
        Channel("slack", "C3", daily_summary=time(9, 0), timezone="Europe/Paris"),
    )
    fake: FakeProviderServer = env["fake"]
    config = AppConfig(
        make_settings(env["tmp"]),
        (make_account("ds", "deepseek", fake.base_url("deepseek")),),
        "t",
        channels=channels,
    )
    runtime = make_runtime(config, env["store"], env["http"], [RecordingAdapter()], clock=clock)
    await runtime.start()
    try:
        jobs = sorted(j.id for j in runtime.scheduler.get_jobs() if j.id.startswith("summary:"))
        assert jobs == ["summary:09:00:Europe/Paris", "summary:09:00:UTC"]
    finally:
        await runtime.stop()


async def test_subscribe_adds_a_channel_with_its_summary_job(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    runtime = runtime_for(env, clock, (), RecordingAdapter())
    admin = Requester("slack", "U2", "C9", is_admin=True)
    reply = await runtime.handler.handle("subscribe 07:30 Europe/Paris", admin)
    assert reply.message.title == "Subscribed"
    (channel,) = await runtime.channels()
    assert (channel.id, channel.daily_summary, channel.timezone) == ("C9", time(7, 30), "Europe/Paris")
    await runtime.start()
    try:
        assert runtime.scheduler.get_job("summary:07:30:Europe/Paris") is not None
        await runtime.handler.handle("unsubscribe", admin)
        assert runtime.scheduler.get_job("summary:07:30:Europe/Paris") is None
    finally:
        await runtime.stop()


async def test_console_prints_messages_and_saves_charts(tmp_path: Path) -> None:
    out = io.StringIO()
    console = ConsoleAdapter(out, chart_dir=tmp_path / "charts", interactive=False)
    await console.send("stdout", Message("Daily", "s", chart=b"\x89PNG fake", chart_name="c.png"))
    assert "── #stdout ──" in out.getvalue()
    assert (tmp_path / "charts" / "c.png").read_bytes() == b"\x89PNG fake"


@pytest.mark.parametrize(
    ("zone", "day", "expected_utc"),
    [
        ("Europe/Paris", "2026-03-29", "07:00"),  # after the spring-forward night: CEST, UTC+2
        ("Europe/Paris", "2026-03-28", "08:00"),
        ("Europe/Paris", "2026-10-25", "08:00"),  # after falling back: CET, UTC+1
        ("America/New_York", "2026-11-01", "14:00"),
    ],
)
def test_summary_time_follows_local_time_across_dst(zone: str, day: str, expected_utc: str) -> None:
    channel = Channel("console", "x", daily_summary=time(9, 0), timezone=zone)
    now = datetime.fromisoformat(f"{day}T12:00:00+00:00")
    due = channel.summary_due_at(now)
    assert due is not None
    assert due.astimezone(UTC).strftime("%H:%M") == expected_utc


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-25T23:30:00+00:00", "2026-11-26T07:00:00+00:00"),  # across midnight
        ("2026-11-26T06:59:00+00:00", "2026-11-26T07:00:00+00:00"),
        ("2026-11-26T07:00:00+00:00", None),
        ("2026-11-25T12:00:00+00:00", None),
    ],
)
def test_quiet_hours_window(now: str, expected: str | None) -> None:
    channel = Channel("console", "x", quiet_hours=(time(22, 0), time(7, 0)))
    end = channel.quiet_until(datetime.fromisoformat(now))
    assert (end.isoformat() if end else None) == expected


async def test_console_answers_typed_commands_through_the_core(env: dict[str, Any]) -> None:
    import asyncio
    import os

    read_fd, write_fd = os.pipe()
    out = io.StringIO()
    with os.fdopen(read_fd, "r") as stdin:
        console = ConsoleAdapter(out, chart_dir=env["tmp"], interactive=True, stdin=stdin)
        runtime = runtime_for(env, Clock(datetime.now(UTC)), (), console)
        await console.start(runtime.handler)
        os.write(write_fd, b"/credits help\n/credits ds\nhello\n")
        for _ in range(100):
            if "¥110.00 left" in out.getvalue() and "start with /credits" in out.getvalue():
                break
            await asyncio.sleep(0.05)
        await console.stop()
        os.close(write_fd)
    text = out.getvalue()
    assert "credits snooze <account>" in text
    assert "ds (deepseek): ¥110.00 left" in text
    assert "Commands start with /credits" in text


# --- Regressions found in review -----------------------------------------------------------------


def alert_posts(adapter: RecordingAdapter) -> list[str]:
    return [m.title for _, m in adapter.sent if m.footer.startswith("rule:")]


async def test_second_critical_crossing_in_an_episode_is_delivered(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (ALERTS_ONLY,), adapter, warn_below=D(500), critical_below=D(150))
    fake: FakeServer = env["fake"]
    for balance in ("110.00", "400.00", "110.00", "1000.00"):
        fake.state.deepseek_infos = [{"currency": "CNY", "total_balance": balance}]
        clock.now += timedelta(minutes=5)
        await runtime.poll()
    assert alert_posts(adapter) == ["ds: below ¥150.00", "ds: below ¥150.00", "ds: balance alert recovered"]


async def test_recovery_goes_to_critical_only_channels_after_a_partial_recovery(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    critical_only = Channel("slack", "CRIT", daily_summary=None, alerts=Severity.CRITICAL)
    runtime = runtime_for(env, clock, (critical_only,), adapter, warn_below=D(500), critical_below=D(150))
    for balance in ("110.00", "400.00", "1000.00"):
        env["fake"].state.deepseek_infos = [{"currency": "CNY", "total_balance": balance}]
        clock.now += timedelta(minutes=5)
        await runtime.poll()
    assert alert_posts(adapter) == ["ds: below ¥150.00", "ds: balance alert recovered"]


async def test_source_does_not_recover_while_still_failing(env: dict[str, Any]) -> None:
    from tests.fakes import Scripted

    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (ALERTS_ONLY,), adapter)
    runtime.monitor._sleep = _instant  # type: ignore[method-assign]
    fake = env["fake"]
    fake.state.script("deepseek", Scripted(401, {"error": {"message": "revoked"}}))
    await runtime.poll()
    for _ in range(3):
        fake.state.script("deepseek", *[Scripted(503, b"") for _ in range(3)])
        clock.now += timedelta(minutes=5)
        await runtime.poll()
    clock.now += timedelta(minutes=5)
    await runtime.poll()
    assert alert_posts(adapter) == ["ds: billing source failing", "ds: billing source works again"]


async def test_snoozed_alert_is_announced_when_the_snooze_ends(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (ALERTS_ONLY,), adapter, critical_below=D(150))
    await env["store"].settings.set_snooze("ds", clock.now + timedelta(hours=1), "test")
    await runtime.poll()
    assert alert_posts(adapter) == []
    clock.now += timedelta(hours=2)
    await runtime.poll()
    assert alert_posts(adapter) == ["ds: below ¥150.00"]


async def test_recovery_of_an_alert_nobody_saw_is_not_sent(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    runtime = runtime_for(env, clock, (ALERTS_ONLY,), adapter, critical_below=D(150))
    await env["store"].settings.set_snooze("ds", clock.now + timedelta(hours=5), "test")
    await runtime.poll()
    env["fake"].state.deepseek_infos = [{"currency": "CNY", "total_balance": "900.00"}]
    clock.now += timedelta(minutes=10)
    await runtime.poll()
    clock.now += timedelta(hours=6)
    await runtime.poll()
    assert alert_posts(adapter) == []


async def test_recovery_never_overtakes_the_alert_it_closes(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    adapter = RecordingAdapter()
    adapter.failures = [DeliveryError("HTTP 503") for _ in range(2)]
    runtime = runtime_for(env, clock, (ALERTS_ONLY,), adapter, warn_below=D(200))
    await runtime.poll()
    env["fake"].state.deepseek_infos = [{"currency": "CNY", "total_balance": "900.00"}]
    clock.now += timedelta(seconds=5)
    await runtime.poll()  # the recovery is queued while the alert still waits for its retry
    for _ in range(6):
        clock.now += timedelta(minutes=2)
        await runtime.dispatch()
    assert alert_posts(adapter) == ["ds: below ¥200.00", "ds: balance alert recovered"]


async def test_a_process_without_the_platform_leaves_its_messages_alone(env: dict[str, Any]) -> None:
    clock = Clock(datetime.now(UTC))
    slack_runtime = runtime_for(env, clock, (ALERTS_ONLY,), RecordingAdapter("discord"), warn_below=D(200))
    await slack_runtime.poll()  # queues a Slack alert that this process cannot send
    (item,) = await env["store"].outbox.items("alert")
    assert item.status == "pending"
    console_only = runtime_for(env, clock, (ALERTS_ONLY,), RecordingAdapter("console"))
    await console_only.notify_test(Channel("console", "stdout", daily_summary=None))
    (item,) = await env["store"].outbox.items("alert")
    assert item.status == "pending"  # still there for the process that has Slack


async def test_summary_missed_across_midnight_is_caught_up(env: dict[str, Any]) -> None:
    late = Channel("slack", "C1", daily_summary=time(23, 30), timezone="UTC", alerts=None)
    midnight = datetime.now(UTC).replace(hour=0, minute=30, second=0, microsecond=0)
    adapter = RecordingAdapter()
    runtime = runtime_for(env, Clock(midnight), (late,), adapter)
    await runtime.poll()
    summaries = await env["store"].outbox.items("summary")
    assert [s.key for s in summaries] == [f"summary:slack:C1:{(midnight - timedelta(days=1)).date()}"]
    fresh_install = runtime_for(env, Clock(midnight + timedelta(hours=20)), (late,), RecordingAdapter())
    fresh_install._caught_up = False
    await fresh_install.summaries.catch_up()  # yesterday's 23:30 is more than 12 h ago: history, not sent
    assert len(await env["store"].outbox.items("summary")) == 1


async def test_nothing_visible_means_no_accounts_not_all(env: dict[str, Any]) -> None:
    runtime = runtime_for(env, Clock(datetime.now(UTC)), (), RecordingAdapter())
    member = Requester("slack", "U1", "C1", is_admin=False)
    for text in ("", "share", "chart"):
        reply = await runtime.handler.handle(text, member, visible=[])
        assert reply.message.sections == ()
    from bot.messages import Action

    assert (await runtime.handler.handle_action(Action("refresh", "r"), member, visible=[])).message.sections == ()


async def test_threshold_that_would_leave_critical_above_warn_is_refused(env: dict[str, Any]) -> None:
    runtime = runtime_for(
        env, Clock(datetime.now(UTC)), (), RecordingAdapter(), warn_below=D(100), critical_below=D(50)
    )
    admin = Requester("slack", "U2", "C1", is_admin=True)
    reply = await runtime.handler.handle("threshold ds 20", admin)
    assert reply.message.title == "Thresholds not changed"
    (view,) = await runtime.monitor.views()
    assert (view.thresholds.warn_below, view.thresholds.critical_below) == (D(100), D(50))
    audit = await env["store"].settings.audit_entries()
    assert audit[0].detail.startswith("refused")


async def test_subscribe_in_a_toml_channel_is_refused_and_audited(env: dict[str, Any]) -> None:
    runtime = runtime_for(env, Clock(datetime.now(UTC)), (SLACK,), RecordingAdapter())
    admin = Requester("slack", "U2", "C1", is_admin=True)
    reply = await runtime.handler.handle("subscribe 07:00", admin)
    assert reply.message.title == "Not subscribed"
    assert await env["store"].settings.subscriptions() == []
    assert (await env["store"].settings.audit_entries())[0].detail == "refused: channel is in creditbot.toml"


async def _instant(_seconds: float) -> None:
    return None


FakeServer = FakeProviderServer


async def test_readiness_reports_the_store_and_each_adapter(env: dict[str, Any]) -> None:
    adapter = RecordingAdapter()
    runtime = runtime_for(env, Clock(datetime.now(UTC)), (), adapter)
    assert await runtime.readiness() == (True, {"store": "ok", "slack": "ok"})
    adapter.connected = lambda: False  # type: ignore[method-assign]
    ready, checks = await runtime.readiness()
    assert (ready, checks["slack"]) == (False, "not connected")
    await env["store"].close()  # the database goes away
    env["store"].engine = create_async_engine("sqlite+aiosqlite:////nonexistent-dir/creditbot.db")
    ready, checks = await runtime.readiness()
    assert not ready
    assert checks["store"].startswith("unreachable")
