"""Database tables (SQLAlchemy Core), shared by the store and the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so it is stored as naive UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes and normalise to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Give back an aware UTC datetime."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Money is stored as decimal text: exact on every backend, and the currency sits beside it.
MONEY = sa.String(48)

readings = sa.Table(
    "readings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("fetched_at", UTCDateTime(), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("currency", sa.String(3)),
    sa.Column("balance", MONEY),
    sa.Column("balance_source", sa.String(16)),
    sa.Column("spent_today", MONEY),
    sa.Column("spent_month", MONEY),
    sa.Column("report", sa.JSON),  # the rest of the provider report (balances, grants, notes)
    sa.Column("error", sa.Text),
    sa.Column("error_kind", sa.String(16)),
    sa.Index("ix_readings_account_ok_id", "account", "ok", "id"),
    sa.Index("ix_readings_fetched_at", "fetched_at"),
)

daily_spend = sa.Table(
    "daily_spend",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False, index=True),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("on_day", sa.Date, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)
