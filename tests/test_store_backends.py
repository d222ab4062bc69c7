"""The store on both backends: SQLite, and a real PostgreSQL server on 127.0.0.1:5432 (trust auth).

Without a server the PostgreSQL cases skip with the reason, except under CI=true where they fail.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from bot.models import AlertState, BalanceSource, DailySpend, ErrorKind, LedgerEntry, ProviderReport, Reading, Rule
from bot.money import Money
from bot.store import AuditEntry, NewMessage, Store, Subscription, ThresholdOverride
from tests.conftest import build_monitor, make_account
from tests.fakes import FakeProviderServer

PG_ADMIN_DSN = os.environ.get("CREDITBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


async def _postgres_database() -> tuple[str, str] | None:
    try:
        import asyncpg
    except ImportError:
        return None
    name = f"creditbot_test_{uuid.uuid4().hex[:12]}"
    try:
        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}", name


async def postgres_database() -> tuple[str, str]:
    """A fresh database (URL, name) on the local server; skips without a server, fails under CI=true."""
    database = await _postgres_database()
    if database is None:
        reason = f"no PostgreSQL server at {PG_ADMIN_DSN} (set CREDITBOT_TEST_PG to point at one)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return database


async def _drop(name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}")
        yield opened
        await opened.close()
        return
    url, name = await postgres_database()
    opened = await Store.open(url)
    try:
        yield opened
    finally:
        await opened.close()
        await _drop(name)


def reading(account: str, when: datetime, balance: str | None = "10.50", error: str | None = None) -> Reading:
    if balance is None:
        return Reading(account, "deepseek", when, error=error or "down", error_kind=ErrorKind.UNAVAILABLE)
    money = Money(Decimal(balance), "CNY")
    return Reading(
        account,
        "deepseek",
        when,
        ProviderReport(
            "CNY",
            balance=money,
            balance_source=BalanceSource.REPORTED,
            balances=(money, Money(Decimal(0), "USD")),
            notes=("a note",),
        ),
    )


async def test_readings_round_trip_and_latest(store: Store) -> None:
    await store.readings.add_reading(reading("a", NOW - timedelta(hours=2), "12.00"))
    await store.readings.add_reading(reading("a", NOW - timedelta(hours=1), "11.00"))
    await store.readings.add_reading(reading("a", NOW, None))
    latest = await store.readings.latest_readings(["a", "b"])
    assert latest["b"].latest is None
    assert latest["a"].latest is not None
    assert latest["a"].latest.error == "down"
    good = latest["a"].latest_good
    assert good is not None
    assert good.fetched_at == NOW - timedelta(hours=1)
    assert good.report is not None
    assert good.report.balance == Money(Decimal("11.00"), "CNY")
    assert good.report.balances[1] == Money(Decimal(0), "USD")
    assert await store.readings.failure_streak("a") == 1
    days = (await store.history.days(["a"], (NOW - timedelta(days=1)).date()))["a"]
    assert [(d.attempts, d.failures) for d in days] == [(3, 1)]
    span = days[0].balance
    assert span is not None
    assert (span.first, span.last, span.drops) == (Decimal("12.00"), Decimal("11.00"), Decimal("1.00"))
    assert await store.readings.has_readings_before(NOW - timedelta(minutes=90))


async def test_daily_spend_upsert_and_ledger(store: Store) -> None:
    days = [DailySpend(date(2026, 11, d), Money(Decimal("1.25"), "USD")) for d in range(20, 26)]
    await store.readings.add_reading(Reading("o", "openai", NOW, ProviderReport("USD")), days)
    await store.readings.add_reading(
        Reading("o", "openai", NOW, ProviderReport("USD")),
        [DailySpend(date(2026, 11, 25), Money(Decimal("3.5"), "USD"))],
    )
    spend = (await store.readings.daily_spends({"o": date.min}))["o"]
    assert [s.amount.amount for s in spend][-2:] == [Decimal("1.25"), Decimal("3.5")]
    assert await store.readings.spend_coverage(["o"]) == {"o": (date(2026, 11, 20), date(2026, 11, 25))}
    await store.readings.add_ledger_entry(
        LedgerEntry("o", Money(Decimal("50"), "USD"), date(2026, 11, 1), "cli", NOW)
    )
    (entry,) = (await store.readings.ledger_entries(["o"]))["o"]
    assert entry.amount == Money(Decimal(50), "USD")
    assert entry.recorded_at == NOW


async def test_outbox_claims_once_and_skips_duplicates(store: Store) -> None:
    assert await store.outbox.enqueue(
        NewMessage("k1", "slack", "C1", "alert", "warning", {"title": "x"}, NOW), now=NOW
    )
    assert not await store.outbox.enqueue(
        NewMessage("k1", "slack", "C1", "alert", "warning", {"title": "x"}, NOW), now=NOW
    )
    (item,) = await store.outbox.open_messages(NOW, timedelta(minutes=10))
    assert await store.outbox.claim(item, NOW, timedelta(minutes=10))
    assert not await store.outbox.claim(item, NOW, timedelta(minutes=10))  # someone has it
    assert await store.outbox.open_messages(NOW, timedelta(minutes=10)) == []
    later = NOW + timedelta(minutes=11)
    (again,) = await store.outbox.open_messages(later, timedelta(minutes=10))  # abandoned claim comes back
    assert await store.outbox.claim(again, later, timedelta(minutes=10))
    await store.outbox.mark_sent(again.id, later)
    (sent,) = await store.outbox.items()
    assert (sent.status, sent.attempts) == ("sent", 2)


async def test_settings_tables(store: Store) -> None:
    await store.settings.set_threshold_override(ThresholdOverride("a", Decimal(20), None, "slack:u", NOW))
    await store.settings.set_threshold_override(ThresholdOverride("a", Decimal(30), Decimal(5), "slack:u", NOW))
    assert (await store.settings.threshold_overrides())["a"].warn_below == Decimal(30)
    await store.settings.set_snooze("a", NOW + timedelta(hours=1), "slack:u")
    assert list(await store.settings.snoozed_until(NOW)) == ["a"]
    await store.settings.save_subscription(
        Subscription("slack", "C9", "07:30", "Europe/Paris", "warning", "u"), NOW
    )
    assert (await store.settings.subscriptions())[0].timezone == "Europe/Paris"
    assert await store.settings.delete_subscription("slack", "C9")
    await store.settings.add_audit(AuditEntry(NOW, "slack", "u", "C9", "snooze", "snoozed a"))
    assert (await store.settings.audit_entries())[0].detail == "snoozed a"
    await store.settings.set_value("k", "v1")
    await store.settings.set_value("k", "v2")
    assert await store.settings.get_value("k") == "v2"
    state = AlertState(
        account="a",
        rule=Rule.BALANCE,
        level=1,
        fired_level=1,
        episode=1,
        since=NOW,
        notified_at=NOW,
        reminders=1,
        detail="below $20",
        peak_level=1,
    )
    await store.alerts.save([state], now=NOW)
    await store.alerts.save([replace(state, level=2)], now=NOW)
    (saved,) = await store.alerts.load()
    assert saved == replace(state, level=2)


async def test_prune_keeps_what_ledgers_need(store: Store) -> None:
    await store.readings.add_reading(reading("a", NOW - timedelta(days=500)))
    await store.readings.add_reading(reading("a", NOW))
    old = [
        DailySpend(date(2025, 6, 1), Money(Decimal(1), "USD")),
        DailySpend(date(2025, 7, 1), Money(Decimal(1), "USD")),
    ]
    await store.readings.add_reading(Reading("o", "openai", NOW, ProviderReport("USD")), old)
    await store.readings.prune_spend(NOW, timedelta(days=400), {"o": date(2025, 6, 15)})
    assert (await store.history.housekeeping(NOW, timedelta(days=400), pause=0)).expired == 1
    assert [s.day for s in (await store.readings.daily_spends({"o": date.min}))["o"]] == [date(2025, 7, 1)]


async def test_replicas_starting_together_migrate_once(store: Store) -> None:
    import asyncio

    url = store.engine.url.render_as_string(hide_password=False)
    others = await asyncio.gather(*(Store.open(url) for _ in range(3)))  # all upgrade "at once"
    for other in others:
        await other.ping()
        await other.close()
    await store.ping()


async def test_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    import asyncio
    import sys

    url, name = await postgres_database()
    code = (
        "import asyncio, sys\nfrom bot.store import Store\n"
        "async def main():\n    s = await Store.open(sys.argv[1])\n    await s.ping()\n    await s.close()\n"
        "asyncio.run(main())\n"
    )
    try:
        processes = [
            await asyncio.create_subprocess_exec(sys.executable, "-c", code, url, stderr=asyncio.subprocess.PIPE)
            for _ in range(4)
        ]
        results = [await p.communicate() for p in processes]
        assert [p.returncode for p in processes] == [0, 0, 0, 0], [r[1].decode()[-500:] for r in results]
    finally:
        await _drop(name)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_an_amount_out_of_range_fails_that_account_only(
    backend: str, tmp_path: Path, fake: FakeProviderServer
) -> None:
    """A provider answering a 62-digit amount once made every account's poll fail on PostgreSQL."""
    if backend == "sqlite":
        url, name = f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}", None
    else:
        url, name = await postgres_database()
    fake.state.deepseek_infos = [
        {"currency": "CNY", "total_balance": "9" * 62, "granted_balance": "0", "topped_up_balance": "0"}
    ]
    accounts = [
        make_account("huge", "deepseek", fake.base_url("deepseek")),
        make_account("fine", "moonshot", fake.base_url("moonshot")),
        make_account("precise", "openrouter", fake.base_url("openrouter")),
    ]
    fake.state.openrouter_total_credits = Decimal("100.0000000000001")  # 13 decimals
    store = await Store.open(url)
    try:
        async with httpx.AsyncClient() as http:
            readings = {r.account: r for r in await build_monitor(tmp_path, store, http, accounts).refresh()}
        stored = await store.readings.latest_readings(["huge", "fine", "precise"])
    finally:
        await store.close()
        if name is not None:
            await _drop(name)
    for bad in ("huge", "precise"):
        assert not readings[bad].ok
        assert "amount out of range" in (readings[bad].error or "")
        assert stored[bad].latest is not None
        assert not stored[bad].latest.ok
    assert stored["fine"].latest_good is not None  # the other account's reading is not lost


async def test_the_outbox_keeps_what_still_waits_and_prunes_what_went_out_in_batches(store: Store) -> None:
    old, recent = NOW - timedelta(days=500), NOW - timedelta(days=1)
    for index in range(7):
        await store.outbox.enqueue(
            NewMessage(f"sent:{index}", "slack", "C1", "summary", "info", {"title": "x"}, old), now=old
        )
    await store.outbox.enqueue(
        NewMessage("waiting", "slack", "C1", "alert", "warning", {"title": "y"}, old), now=old
    )
    await store.outbox.enqueue(
        NewMessage("recent", "slack", "C1", "test", "info", {"title": "z"}, recent), now=recent
    )
    for item in await store.outbox.items():
        if item.key.startswith("sent:") or item.key == "recent":
            await store.outbox.mark_sent(item.id, item.not_before)
    assert await store.outbox.prune(NOW - timedelta(days=400), batch=3) == 7
    assert sorted(i.key for i in await store.outbox.items()) == ["recent", "waiting"]


async def test_a_summary_chart_is_stored_once_per_fan_out_and_dropped_once_sent(store: Store) -> None:
    png = b"\x89PNG fake chart bytes" * 1000
    chart = base64.b64encode(png).decode()
    fan_out = [
        NewMessage(f"summary:slack:C{i}:2026-11-25", "slack", f"C{i}", "summary", "info", {"chart": chart}, NOW)
        for i in range(3)
    ]
    assert len(await store.outbox.enqueue_many(fan_out, now=NOW)) == 3
    async with store.engine.connect() as connection:
        stored = (await connection.execute(sa.text("SELECT count(*), sum(length(png)) FROM charts"))).one()
        inline = (await connection.execute(sa.text("SELECT max(length(CAST(message AS TEXT))) FROM outbox"))).one()
    assert tuple(stored) == (1, len(png))
    assert inline[0] < 200  # the rows refer to the chart; none carries it
    items = await store.outbox.items()
    assert [item.message["chart"] for item in items] == [chart] * 3
    for item in items[:2]:
        await store.outbox.mark_sent(item.id, NOW)
    assert (await store.outbox.open_messages(NOW, timedelta(minutes=5)))[0].message["chart"] == chart
    await store.outbox.mark_failed(items[2].id, "channel_not_found", None)
    async with store.engine.connect() as connection:
        assert (await connection.execute(sa.text("SELECT count(*) FROM charts"))).scalar_one() == 0


async def test_failure_streaks_are_stored_with_each_attempt_and_survive_compaction(store: Store) -> None:
    await store.readings.add_reading(reading("a", NOW - timedelta(days=20), "10.00"))
    for hours in range(30, 0, -1):  # failing for 30 hours: 20 of them folded into days and dropped
        await store.readings.add_reading(reading("a", NOW - timedelta(days=9, hours=hours), None))
    await store.readings.add_reading(reading("a", NOW, None))
    assert (await store.readings.latest_readings(["a"]))["a"].streak == 31
    done = await store.history.housekeeping(NOW, timedelta(days=400), pause=0)
    assert done.compacted == 30  # the newest good reading stays, however old
    latest = (await store.readings.latest_readings(["a"]))["a"]
    assert latest.streak == 31
    assert latest.latest_good is not None
    assert latest.latest_good.fetched_at == NOW - timedelta(days=20)
    assert await store.readings.failure_streak("a") == 31
    await store.readings.add_reading(reading("a", NOW + timedelta(minutes=15), "9.00"))
    assert (await store.readings.latest_readings(["a"]))["a"].streak == 0


async def test_credits_counted_in_a_unit_word_are_stored_on_both_backends(store: Store) -> None:
    chars = Money(Decimal(12500), "characters")
    await store.readings.add_reading(
        Reading(
            "el",
            "elevenlabs",
            NOW,
            ProviderReport("characters", balance=chars, balance_source=BalanceSource.REPORTED),
        )
    )
    good = (await store.readings.latest_readings(["el"]))["el"].latest_good
    assert good is not None
    assert good.report is not None
    assert good.report.balance == chars
    assert chars.format() == "12,500 characters"
    with pytest.raises(ValueError, match="cannot combine"):
        _ = chars + Money(Decimal(1), "USD")


async def test_a_renewal_date_and_a_refusal_are_kept_with_the_reading(store: Store) -> None:
    renews = NOW + timedelta(days=9)
    report = ProviderReport("characters", balance=Money(Decimal(10), "characters"), resets_at=renews, refused="no")
    await store.readings.add_reading(Reading("el", "elevenlabs", NOW, report))
    good = (await store.readings.latest_readings(["el"]))["el"].latest_good
    assert good is not None
    assert good.report is not None
    assert (good.report.resets_at, good.report.refused) == (renews, "no")
