"""Settings made from chat and bookkeeping: threshold overrides, snoozes, subscriptions, the audit log and a
small key-value table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.schema import audit_log, settings_kv, snoozes, subscriptions, threshold_overrides


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
class AuditEntry:
    """Who changed (or tried to change) what, when and where."""

    at: datetime
    platform: str
    user: str
    channel: str | None
    command: str
    detail: str


class SettingsStore:
    """What admins set from chat, and values the bot keeps for itself."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

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

    async def add_audit(self, entry: AuditEntry) -> None:
        """Record who changed what, when."""
        async with self.engine.begin() as connection:
            await connection.execute(audit_log.insert().values(**asdict(entry)))

    async def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        """The latest audit entries, newest first."""
        query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [_from_row(AuditEntry, row) for row in rows]

    async def subscriptions(self) -> list[Subscription]:
        """Channels subscribed from chat."""
        async with self.engine.connect() as connection:
            rows = (await connection.execute(sa.select(subscriptions))).mappings().all()
        return [_from_row(Subscription, row) for row in rows]

    async def save_subscription(self, subscription: Subscription, now: datetime) -> None:
        """Create or replace a channel's subscription."""
        where = (subscriptions.c.platform == subscription.platform) & (
            subscriptions.c.channel == subscription.channel
        )
        async with self.engine.begin() as connection:
            await connection.execute(subscriptions.delete().where(where))
            await connection.execute(subscriptions.insert().values(**asdict(subscription), created_at=now))

    async def delete_subscription(self, platform: str, channel: str) -> bool:
        """Remove a channel's subscription; False when there was none."""
        where = (subscriptions.c.platform == platform) & (subscriptions.c.channel == channel)
        async with self.engine.begin() as connection:
            return bool((await connection.execute(subscriptions.delete().where(where))).rowcount)

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


Row = TypeVar("Row", "AuditEntry", "Subscription")


def _from_row(kind: type[Row], row: Any) -> Row:
    """A stored row as its dataclass (the table has the dataclass's columns, and maybe more)."""
    return kind(**{f.name: row[f.name] for f in fields(kind)})
