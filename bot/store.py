"""Persistence of readings, daily spend and the top-up ledger (SQLAlchemy Core, async)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.models import (
    BalanceSource,
    DailySpend,
    ErrorKind,
    Grant,
    LedgerEntry,
    ProviderReport,
    Reading,
)
from bot.money import Money
from bot.schema import (
    alert_states,
    audit_log,
    daily_spend,
    ledger,
    outbox,
    readings,
    settings_kv,
    snoozes,
    subscriptions,
    threshold_overrides,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK_KEY = 0x63726564_6D696772  # "credmigr": a fixed advisory lock id for schema upgrades
CONNECT_TIMEOUT = 10.0  # seconds to reach a PostgreSQL server


class StoreError(Exception):
    """The database cannot be opened or used; the message says what to fix."""

    def __init__(self, message: str, *, misconfigured: bool = False) -> None:
        super().__init__(message)
        self.misconfigured = misconfigured  # the URL itself is wrong, not the server


@dataclass(frozen=True)
class ThresholdOverride:
    """Thresholds set from chat for one account."""

    account: str
    warn_below: Decimal | None
    critical_below: Decimal | None
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class Subscription:
    """A channel that subscribed from chat."""

    platform: str
    channel: str
    daily_summary: str | None
    timezone: str
    alerts: str
    created_by: str


@dataclass(frozen=True)
class OutboxItem:
    """A message waiting to be delivered (or delivered)."""

    id: int
    key: str
    platform: str
    channel: str
    kind: str
    severity: str
    message: dict[str, Any]
    status: str
    attempts: int
    not_before: datetime
    last_error: str | None = None


@dataclass(frozen=True)
class AccountReadings:
    """The latest attempt and the latest good reading of one account."""

    latest: Reading | None
    latest_good: Reading | None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets `creditbot check` read while `creditbot run` writes; busy_timeout waits out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _prepare_sqlite_path(url: sa.URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


class Store:
    """Async access to the creditbot database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.damaged: str | None = None  # set once SQLite reported a damaged file: what to tell the operator

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect, switch SQLite to WAL mode and upgrade the schema to the latest revision."""
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(
                "CREDITBOT_DATABASE_URL is not a database URL (e.g. sqlite+aiosqlite:///./data/creditbot.db)",
                misconfigured=True,
            ) from None
        try:
            if parsed.get_backend_name() == "sqlite":
                _prepare_sqlite_path(parsed)
        except OSError as exc:
            raise StoreError(
                f"cannot create the database directory for {parsed.database}: {exc.strerror}"
            ) from None
        # asyncpg waits 60 s for a server that accepts the connection but never answers; fail sooner.
        connect_args = {"timeout": CONNECT_TIMEOUT} if parsed.get_driver_name() == "asyncpg" else {}
        try:
            engine = create_async_engine(
                parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite", connect_args=connect_args
            )
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(
                f"CREDITBOT_DATABASE_URL cannot be used: {_short(exc)} (use an async driver such as "
                "sqlite+aiosqlite:// or postgresql+asyncpg://)",
                misconfigured=True,
            ) from None
        store = cls(engine)
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(engine.sync_engine, "handle_error", store._note_damage)
        if migrate:
            try:
                await store.migrate()
            except Exception as exc:  # driver errors (asyncpg's own, OSError, TimeoutError) are not all wrapped
                await engine.dispose()
                raise StoreError(database_problem(parsed, exc, opening=True)) from None
        return store

    async def migrate(self) -> None:
        """Upgrade the schema with Alembic (imported here: only needed at start)."""
        # An up-to-date schema needs no lock: a read-only database still opens, and starts stay quick.
        async with self.engine.connect() as connection:
            if await connection.run_sync(_at_head):
                return
        # Alembic keeps its migration context in module globals: one upgrade at a time per process.
        async with _migration_lock(), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas starting together take turns: the lock is held until this transaction ends.
                lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
                await connection.execute(lock, {"key": MIGRATION_LOCK_KEY})
            elif connection.dialect.name == "sqlite":
                # Python's sqlite3 opens a transaction only before INSERT/UPDATE/DELETE, so the DDL of an
                # upgrade would be committed statement by statement, and a crash half-way would leave tables
                # that the next start fails to create again. An explicit transaction makes the upgrade all or
                # nothing; IMMEDIATE takes the write lock first, so processes starting together take turns.
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
            await connection.run_sync(_upgrade)

    async def close(self) -> None:
        """Release every connection."""
        await self.engine.dispose()

    # Readings

    async def add_reading(self, reading: Reading, spend: Sequence[DailySpend] = ()) -> None:
        """Record one fetch attempt and, for a good one, upsert its daily spend."""
        await self.add_readings([(reading, spend)])

    async def add_readings(self, items: Sequence[tuple[Reading, Sequence[DailySpend]]]) -> None:
        """Record a poll's fetch attempts in one transaction (one commit for a thousand accounts)."""
        if not items:
            return
        async with self.engine.begin() as connection:
            await connection.execute(readings.insert(), [reading_to_row(reading) for reading, _ in items])
            for reading, spend in items:
                if spend:
                    await self._upsert_spend(connection, reading.account, spend, reading.fetched_at)

    async def _upsert_spend(
        self, connection: AsyncConnection, account: str, spend: Sequence[DailySpend], now: datetime
    ) -> None:
        days = [entry.day for entry in spend]
        await connection.execute(
            daily_spend.delete().where(daily_spend.c.account == account, daily_spend.c.day.in_(days))
        )
        await connection.execute(
            daily_spend.insert(),
            [
                {
                    "account": account,
                    "day": e.day,
                    "currency": e.amount.currency,
                    "amount": str(e.amount.amount),
                    "updated_at": now,
                }
                for e in spend
            ],
        )

    async def latest_readings(self, accounts: Iterable[str]) -> dict[str, AccountReadings]:
        """For each account, its latest attempt and its latest good reading."""
        names = list(accounts)
        if not names:
            return {}
        latest_ids = (
            sa.select(sa.func.max(readings.c.id)).where(readings.c.account.in_(names)).group_by(readings.c.account)
        )
        good_ids = (
            sa.select(sa.func.max(readings.c.id))
            .where(readings.c.account.in_(names), readings.c.ok.is_(True))
            .group_by(readings.c.account)
        )
        async with self.engine.connect() as connection:
            rows = (
                (
                    await connection.execute(
                        sa.select(readings).where(
                            sa.or_(readings.c.id.in_(latest_ids), readings.c.id.in_(good_ids))
                        )
                    )
                )
                .mappings()
                .all()
            )
        result = {name: AccountReadings(None, None) for name in names}
        by_account: dict[str, list[Reading]] = {}
        for row in rows:
            by_account.setdefault(row["account"], []).append(row_to_reading(row))
        for name, items in by_account.items():
            items.sort(key=lambda r: r.fetched_at)
            good = [r for r in items if r.ok]
            result[name] = AccountReadings(latest=items[-1], latest_good=good[-1] if good else None)
        return result

    async def has_readings_before(self, when: datetime) -> bool:
        """True when any account was fetched before a time (the bot was already at work then)."""
        query = sa.select(readings.c.id).where(readings.c.fetched_at < when).limit(1)
        async with self.engine.connect() as connection:
            return (await connection.execute(query)).first() is not None

    async def balance_histories(
        self, accounts: Iterable[str], since: datetime
    ) -> dict[str, list[tuple[datetime, Money]]]:
        """Reported balances of several accounts since a time, oldest first (for burn from balance changes)."""
        names = list(accounts)
        result: dict[str, list[tuple[datetime, Money]]] = {name: [] for name in names}
        if not names:
            return result
        query = (
            sa.select(readings.c.account, readings.c.fetched_at, readings.c.balance, readings.c.currency)
            .where(
                readings.c.account.in_(names),
                readings.c.ok.is_(True),
                readings.c.fetched_at >= since,
                readings.c.balance.is_not(None),
            )
            .order_by(readings.c.fetched_at)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        for row in rows:
            result[row[0]].append((row[1], Money(Decimal(row[2]), row[3])))
        return result

    async def failure_streak(self, account: str) -> int:
        """How many attempts in a row have failed, counting back from the latest."""
        last_good = (
            sa.select(sa.func.max(readings.c.id))
            .where(readings.c.account == account, readings.c.ok.is_(True))
            .scalar_subquery()
        )
        query = sa.select(sa.func.count()).where(
            readings.c.account == account, readings.c.id > sa.func.coalesce(last_good, 0)
        )
        async with self.engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())

    # Daily spend

    async def daily_spends(self, since: dict[str, date]) -> dict[str, list[DailySpend]]:
        """`daily_spend` of several accounts in one query, each from its own first day."""
        result: dict[str, list[DailySpend]] = {name: [] for name in since}
        if not since:
            return result
        query = (
            sa.select(daily_spend.c.account, daily_spend.c.day, daily_spend.c.amount, daily_spend.c.currency)
            .where(daily_spend.c.account.in_(list(since)), daily_spend.c.day >= min(since.values()))
            .order_by(daily_spend.c.day)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        for row in rows:
            if row[1] >= since[row[0]]:
                result[row[0]].append(DailySpend(row[1], Money(Decimal(row[2]), row[3])))
        return result

    async def spend_coverage(self, accounts: Iterable[str]) -> dict[str, tuple[date, date]]:
        """First and last stored spend day per account."""
        names = list(accounts)
        query = (
            sa.select(daily_spend.c.account, sa.func.min(daily_spend.c.day), sa.func.max(daily_spend.c.day))
            .where(daily_spend.c.account.in_(names))
            .group_by(daily_spend.c.account)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return {row[0]: (row[1], row[2]) for row in rows}

    # Ledger

    async def add_ledger_entry(self, entry: LedgerEntry) -> int:
        """Record a top-up and return its id."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                ledger.insert().values(
                    account=entry.account,
                    amount=str(entry.amount.amount),
                    currency=entry.amount.currency,
                    on_day=entry.on_day,
                    source=entry.source,
                    recorded_at=entry.recorded_at,
                )
            )
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

    async def ledger_entries(self, accounts: Iterable[str]) -> dict[str, list[LedgerEntry]]:
        """Recorded top-ups per account, oldest first."""
        names = list(accounts)
        query = sa.select(ledger).where(ledger.c.account.in_(names)).order_by(ledger.c.on_day, ledger.c.id)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        result: dict[str, list[LedgerEntry]] = {name: [] for name in names}
        for row in rows:
            result[row["account"]].append(
                LedgerEntry(
                    account=row["account"],
                    amount=Money(Decimal(row["amount"]), row["currency"]),
                    on_day=row["on_day"],
                    source=row["source"],
                    recorded_at=row["recorded_at"],
                    entry_id=row["id"],
                )
            )
        return result

    # Housekeeping

    async def prune(self, now: datetime, retention: timedelta, keep_spend_since: dict[str, date]) -> int:
        """Delete readings older than the retention, and daily spend no ledger still needs."""
        cutoff = now - retention
        async with self.engine.begin() as connection:
            deleted = (await connection.execute(readings.delete().where(readings.c.fetched_at < cutoff))).rowcount
            spend_cutoff = cutoff.date()
            condition = daily_spend.c.day < spend_cutoff
            for account, first_day in keep_spend_since.items():
                condition = condition & sa.not_(
                    (daily_spend.c.account == account) & (daily_spend.c.day >= min(first_day, spend_cutoff))
                )
            await connection.execute(daily_spend.delete().where(condition))
        return int(deleted or 0)

    # Chat-set thresholds, snoozes, subscriptions and the audit log

    async def threshold_overrides(self) -> dict[str, ThresholdOverride]:
        """Thresholds set from chat, per account."""
        async with self.engine.connect() as connection:
            rows = (await connection.execute(sa.select(threshold_overrides))).mappings().all()
        return {
            row["account"]: ThresholdOverride(
                row["account"],
                Decimal(row["warn_below"]) if row["warn_below"] is not None else None,
                Decimal(row["critical_below"]) if row["critical_below"] is not None else None,
                row["updated_by"],
                row["updated_at"],
            )
            for row in rows
        }

    async def set_threshold_override(self, override: ThresholdOverride) -> None:
        """Store thresholds set from chat (replacing earlier ones for the account)."""
        async with self.engine.begin() as connection:
            await connection.execute(
                threshold_overrides.delete().where(threshold_overrides.c.account == override.account)
            )
            await connection.execute(
                threshold_overrides.insert().values(
                    account=override.account,
                    warn_below=None if override.warn_below is None else str(override.warn_below),
                    critical_below=None if override.critical_below is None else str(override.critical_below),
                    updated_by=override.updated_by,
                    updated_at=override.updated_at,
                )
            )

    async def set_snooze(self, account: str, until: datetime, by: str) -> None:
        """Silence an account's alerts until a time."""
        async with self.engine.begin() as connection:
            await connection.execute(snoozes.delete().where(snoozes.c.account == account))
            await connection.execute(snoozes.insert().values(account=account, until=until, updated_by=by))

    async def snoozed_until(self, now: datetime) -> dict[str, datetime]:
        """Accounts whose alerts are snoozed at `now`, with the end of each snooze."""
        async with self.engine.connect() as connection:
            rows = (await connection.execute(sa.select(snoozes).where(snoozes.c.until > now))).mappings().all()
        return {row["account"]: row["until"] for row in rows}

    async def add_audit(
        self, at: datetime, platform: str, user: str, channel: str | None, command: str, detail: str
    ) -> None:
        """Record who changed what, when."""
        async with self.engine.begin() as connection:
            await connection.execute(
                audit_log.insert().values(
                    at=at, platform=platform, user=user, channel=channel, command=command, detail=detail
                )
            )

    async def audit_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest audit entries, newest first."""
        query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        async with self.engine.connect() as connection:
            return [dict(row) for row in (await connection.execute(query)).mappings().all()]

    async def subscriptions(self) -> list[Subscription]:
        """Channels subscribed from chat."""
        async with self.engine.connect() as connection:
            rows = (await connection.execute(sa.select(subscriptions))).mappings().all()
        return [
            Subscription(
                r["platform"], r["channel"], r["daily_summary"], r["timezone"], r["alerts"], r["created_by"]
            )
            for r in rows
        ]

    async def save_subscription(self, subscription: Subscription, now: datetime) -> None:
        """Create or replace a channel's subscription."""
        where = (subscriptions.c.platform == subscription.platform) & (
            subscriptions.c.channel == subscription.channel
        )
        async with self.engine.begin() as connection:
            await connection.execute(subscriptions.delete().where(where))
            await connection.execute(
                subscriptions.insert().values(
                    platform=subscription.platform,
                    channel=subscription.channel,
                    daily_summary=subscription.daily_summary,
                    timezone=subscription.timezone,
                    alerts=subscription.alerts,
                    created_by=subscription.created_by,
                    created_at=now,
                )
            )

    async def delete_subscription(self, platform: str, channel: str) -> bool:
        """Remove a channel's subscription; False when there was none."""
        where = (subscriptions.c.platform == platform) & (subscriptions.c.channel == channel)
        async with self.engine.begin() as connection:
            return bool((await connection.execute(subscriptions.delete().where(where))).rowcount)

    # Alert states

    async def alert_states(self) -> list[dict[str, Any]]:
        """Every stored alert state row."""
        async with self.engine.connect() as connection:
            return [dict(r) for r in (await connection.execute(sa.select(alert_states))).mappings().all()]

    async def save_alert_states(self, rows: Sequence[dict[str, Any]], now: datetime) -> None:
        """Replace the given (account, rule) states in one transaction."""
        if not rows:
            return
        async with self.engine.begin() as connection:
            for row in rows:
                await connection.execute(
                    alert_states.delete().where(
                        (alert_states.c.account == row["account"]) & (alert_states.c.rule == row["rule"])
                    )
                )
            await connection.execute(alert_states.insert(), [{**row, "updated_at": now} for row in rows])

    # Outbox: every delivery is claimed under its unique key, sent, then marked

    async def enqueue(
        self,
        key: str,
        platform: str,
        channel: str,
        kind: str,
        severity: str,
        message: dict[str, Any],
        not_before: datetime,
        now: datetime,
    ) -> bool:
        """Queue a message unless one with the same key exists; True when queued."""
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    outbox.insert().values(
                        key=key,
                        platform=platform,
                        channel=channel,
                        kind=kind,
                        severity=severity,
                        message=message,
                        status="pending",
                        not_before=not_before,
                        attempts=0,
                        created_at=now,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def enqueue_many(self, messages: Sequence[dict[str, Any]], now: datetime) -> list[str]:
        """Queue several messages (each with the arguments of `enqueue`) in one transaction, skipping keys that
        exist; returns the keys queued."""
        if not messages:
            return []
        existing = await self.existing_keys(m["key"] for m in messages)
        rows = [
            {**m, "status": "pending", "attempts": 0, "created_at": now}
            for m in messages
            if m["key"] not in existing
        ]
        if not rows:
            return []
        try:
            async with self.engine.begin() as connection:
                await connection.execute(outbox.insert(), rows)
        except IntegrityError:
            # Another process queued some of them meanwhile: fall back to one at a time.
            queued = []
            for row in rows:
                fields = {k: row[k] for k in ("key", "platform", "channel", "kind", "severity", "message")}
                if await self.enqueue(**fields, not_before=row["not_before"], now=now):
                    queued.append(row["key"])
            return queued
        return [row["key"] for row in rows]

    async def latest_sent_per_channel(self, kind: str) -> dict[tuple[str, str], OutboxItem]:
        """The latest delivered message of a kind in every channel, by (platform, channel)."""
        latest = (
            sa.select(sa.func.max(outbox.c.id))
            .where(outbox.c.kind == kind, outbox.c.status == "sent")
            .group_by(outbox.c.platform, outbox.c.channel)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(sa.select(outbox).where(outbox.c.id.in_(latest)))).mappings().all()
        return {(row["platform"], row["channel"]): _outbox_item(row) for row in rows}

    async def open_messages(self, now: datetime, lease: timedelta, limit: int = 1000) -> list[OutboxItem]:
        """Messages not delivered yet (pending, or claimed by a process that gave no sign for a lease), oldest
        first, whether due or not."""
        query = (
            sa.select(outbox)
            .where(
                sa.or_(
                    outbox.c.status == "pending",
                    (outbox.c.status == "claimed") & (outbox.c.claimed_at < now - lease),
                )
            )
            .order_by(outbox.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [_outbox_item(row) for row in rows]

    async def claimed_channels(self, since: datetime) -> set[tuple[str, str]]:
        """Channels (platform, channel) with a message claimed at or after `since`: being sent now, or left
        claimed by a process that died while sending it."""
        query = (
            sa.select(outbox.c.platform, outbox.c.channel)
            .where(outbox.c.status == "claimed", outbox.c.claimed_at >= since)
            .distinct()
        )
        async with self.engine.connect() as connection:
            return {(row[0], row[1]) for row in (await connection.execute(query)).all()}

    async def mark_skipped(self, item_id: int, reason: str) -> None:
        """Record that a message was deliberately not sent (e.g. its account was snoozed meanwhile)."""
        async with self.engine.begin() as connection:
            await connection.execute(
                outbox.update().where(outbox.c.id == item_id).values(status="skipped", last_error=reason)
            )

    async def claim(self, item: OutboxItem, now: datetime, lease: timedelta) -> bool:
        """Take a message for sending; False when someone else has it."""
        condition = (outbox.c.id == item.id) & sa.or_(
            outbox.c.status == "pending", (outbox.c.status == "claimed") & (outbox.c.claimed_at < now - lease)
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(
                outbox.update()
                .where(condition)
                .values(status="claimed", claimed_at=now, attempts=outbox.c.attempts + 1)
            )
        return bool(result.rowcount)

    async def mark_sent(self, item_id: int, now: datetime) -> None:
        """Record a successful delivery."""
        async with self.engine.begin() as connection:
            await connection.execute(
                outbox.update().where(outbox.c.id == item_id).values(status="sent", sent_at=now)
            )

    async def mark_failed(self, item_id: int, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt: back to pending for a retry, or failed for good."""
        values: dict[str, Any] = {"last_error": error[:1000]}
        values.update(status="pending", not_before=retry_at) if retry_at else values.update(status="failed")
        async with self.engine.begin() as connection:
            await connection.execute(outbox.update().where(outbox.c.id == item_id).values(**values))

    async def outbox_items(self, kind: str | None = None) -> list[OutboxItem]:
        """Every outbox row (optionally of one kind), oldest first."""
        query = sa.select(outbox).order_by(outbox.c.id)
        if kind:
            query = query.where(outbox.c.kind == kind)
        async with self.engine.connect() as connection:
            return [_outbox_item(row) for row in (await connection.execute(query)).mappings().all()]

    async def existing_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of these outbox keys were ever queued."""
        wanted = list(keys)
        if not wanted:
            return set()
        async with self.engine.connect() as connection:
            rows = await connection.execute(sa.select(outbox.c.key).where(outbox.c.key.in_(wanted)))
            return set(rows.scalars())

    async def get_value(self, key: str) -> str | None:
        """A bookkeeping value, if set."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(sa.select(settings_kv.c.value).where(settings_kv.c.key == key))
            ).first()
        return None if row is None else str(row[0])

    async def set_value(self, key: str, value: str) -> None:
        """Store a bookkeeping value."""
        async with self.engine.begin() as connection:
            await connection.execute(settings_kv.delete().where(settings_kv.c.key == key))
            await connection.execute(settings_kv.insert().values(key=key, value=value))

    def _note_damage(self, context: Any) -> None:
        # A damaged page fails only the queries that read it; remember it so that readiness reports it.
        if _is_damage(context.original_exception):
            self.damaged = database_problem(self.engine.url, context.original_exception)

    async def ping(self) -> None:
        """Fail when the database cannot be reached, or when SQLite has reported the file damaged."""
        if self.damaged:
            raise StoreError(self.damaged)
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))


def _outbox_item(row: Any) -> OutboxItem:
    return OutboxItem(
        row["id"],
        row["key"],
        row["platform"],
        row["channel"],
        row["kind"],
        row["severity"],
        row["message"],
        row["status"],
        row["attempts"],
        row["not_before"],
        row["last_error"],
    )


_MIGRATION_LOCKS: dict[int, asyncio.Lock] = {}


def _migration_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    return _MIGRATION_LOCKS.setdefault(id(loop), asyncio.Lock())


def _alembic_config(connection: sa.Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _at_head(connection: sa.Connection) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()
    return bool(MigrationContext.configure(connection).get_current_revision() == head)


def _upgrade(connection: sa.Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


def _short(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return (lines[0] if lines else type(inner).__name__)[:200]


def _is_damage(exc: BaseException) -> bool:
    detail = _short(exc)  # SQLITE_NOTADB and SQLITE_CORRUPT
    return "file is not a database" in detail or "database disk image is malformed" in detail


def is_database_error(exc: BaseException) -> bool:
    """True for an error raised by the database layer (SQLAlchemy, or a driver's own exception)."""
    module = type(exc).__module__.split(".")[0]
    return isinstance(exc, SQLAlchemyError) or module in ("asyncpg", "sqlite3", "aiosqlite")


def database_problem(url: str | sa.URL, exc: BaseException, *, opening: bool = False) -> str:
    """One line that says which database failed, why, and what to do about it (never the password)."""
    parsed = make_url(url)
    shown = f"CREDITBOT_DATABASE_URL={parsed.render_as_string(hide_password=True)}"
    detail = _short(exc)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").expanduser().resolve()
        if _is_damage(exc):
            return (
                f"the database file {path} is not a SQLite database or is damaged ({detail}); restore it from "
                f"a backup, or move it away to start with an empty database ({shown})"
            )
        if "locked" in detail:
            hint = "another process holds a write lock on it; try again when it is done"
        else:
            hint = f"check that {path} and its directory can be read and written"
    else:
        hint = "check that the server is running and reachable, and the URL's host, port, database and user"
    return f"{'cannot open' if opening else 'error from'} the database at {shown}: {detail}; {hint}"


def _money(value: Money | None) -> str | None:
    return None if value is None else str(value.amount)


def _money_json(value: Money | None) -> dict[str, str] | None:
    return None if value is None else {"amount": str(value.amount), "currency": value.currency}


def _money_from(value: Any) -> Money | None:
    return None if value is None else Money(Decimal(value["amount"]), value["currency"])


def reading_to_row(reading: Reading) -> dict[str, Any]:
    """Columns for one reading; the daily series lives in its own table."""
    report = reading.report
    row: dict[str, Any] = {
        "account": reading.account,
        "provider": reading.provider,
        "fetched_at": reading.fetched_at,
        "ok": report is not None,
        "error": reading.error,
        "error_kind": reading.error_kind.value if reading.error_kind else None,
        # Every row has every column, so that a poll's readings can be inserted in one executemany.
        "currency": None,
        "balance": None,
        "balance_source": None,
        "spent_today": None,
        "spent_month": None,
        "report": None,
    }
    if report is not None:
        row.update(
            currency=report.currency,
            balance=_money(report.balance),
            balance_source=report.balance_source.value if report.balance_source else None,
            spent_today=_money(report.spent_today),
            spent_month=_money(report.spent_month),
            report={
                "balances": [_money_json(m) for m in report.balances],
                "granted_total": _money_json(report.granted_total),
                "grants": [
                    {
                        "granted": _money_json(g.granted),
                        "used": _money_json(g.used),
                        "expires_at": g.expires_at.isoformat() if g.expires_at else None,
                    }
                    for g in report.grants
                ],
                "notes": list(report.notes),
            },
        )
    return row


def row_to_reading(row: Any) -> Reading:
    """The Reading stored in one row (without its daily series)."""
    report = None
    if row["ok"]:
        currency = row["currency"]
        extra = row["report"] or {}

        def money(column: str) -> Money | None:
            return None if row[column] is None else Money(Decimal(row[column]), currency)

        report = ProviderReport(
            currency=currency,
            balance=money("balance"),
            balance_source=BalanceSource(row["balance_source"]) if row["balance_source"] else None,
            balances=tuple(m for m in (_money_from(v) for v in extra.get("balances", [])) if m is not None),
            spent_today=money("spent_today"),
            spent_month=money("spent_month"),
            granted_total=_money_from(extra.get("granted_total")),
            grants=tuple(
                Grant(
                    granted=_money_from(g["granted"]) or Money.zero(currency),
                    used=_money_from(g["used"]) or Money.zero(currency),
                    expires_at=datetime.fromisoformat(g["expires_at"]).astimezone(UTC)
                    if g["expires_at"]
                    else None,
                )
                for g in extra.get("grants", [])
            ),
            notes=tuple(extra.get("notes", [])),
        )
    return Reading(
        account=row["account"],
        provider=row["provider"],
        fetched_at=row["fetched_at"],
        report=report,
        error=row["error"],
        error_kind=ErrorKind(row["error_kind"]) if row["error_kind"] else None,
    )
