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
CURRENCY = sa.String(16)  # an ISO code ("USD") or a unit word for credits that are not money ("characters")

readings = sa.Table(
    "readings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("fetched_at", UTCDateTime(), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("currency", CURRENCY),
    sa.Column("balance", MONEY),
    sa.Column("balance_source", sa.String(16)),
    sa.Column("spent_today", MONEY),
    sa.Column("spent_month", MONEY),
    sa.Column("report", sa.JSON),  # the rest of the provider report (balances, grants, notes)
    sa.Column("error", sa.Text),
    sa.Column("error_kind", sa.String(16)),
    # Failed attempts in a row up to this one (0 for a good reading): the billing-source alert reads it from
    # the newest row, so it stays exact when older attempts are rolled up. Null on rows from before 0006.
    sa.Column("streak", sa.Integer),
    sa.Index("ix_readings_account_ok_id", "account", "ok", "id"),
    sa.Index("ix_readings_fetched_at", "fetched_at"),
    sa.Index("ix_readings_account_fetched_at", "account", "fetched_at"),
)

# One row per account and UTC day, kept up to date as readings are stored, so that history older than the raw
# window costs one row per day whatever the poll interval (see docs/architecture.md, "History").
reading_days = sa.Table(
    "reading_days",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("first_at", UTCDateTime(), nullable=False),
    sa.Column("last_at", UTCDateTime(), nullable=False),
    sa.Column("last_ok", sa.Boolean, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("last_error_kind", sa.String(16)),
    # The reported balance over the day, in the currency of its last good reading.
    sa.Column("currency", CURRENCY),
    sa.Column("balance_first", MONEY),
    sa.Column("balance_last", MONEY),
    sa.Column("balance_min", MONEY),
    sa.Column("balance_max", MONEY),
    sa.Column("balance_first_at", UTCDateTime()),
    sa.Column("balance_last_at", UTCDateTime()),
    sa.Column("balance_drops", MONEY),  # the sum of falls between the day's consecutive balances
)

daily_spend = sa.Table(
    "daily_spend",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("currency", CURRENCY, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Where the money goes (`bot.breakdown`): which days a breakdown fetch asked for and whether the provider
# answered them, and one row per account, day, dimension and entry. Rows are replaced day by day.
breakdown_days = sa.Table(
    "breakdown_days",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("reported", sa.Boolean, nullable=False),  # false: asked, but the provider had nothing yet (lag)
    sa.Column("final", sa.Boolean, nullable=False),  # answered once the day had settled: never asked again
    sa.Column("currency", CURRENCY),
    sa.Column("total", MONEY),  # the day's spend from the ungrouped costs: what the parts add up to
    sa.Column("fetched_at", UTCDateTime(), nullable=False),
)

breakdown_parts = sa.Table(
    "breakdown_parts",
    metadata,
    # Key order account, dimension, day: a table reads one dimension of a window as one range per account.
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("dimension", sa.String(16), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("label", sa.String(255), nullable=False),
    sa.Column("cost", MONEY),  # null: the source gives no money for this entry
    sa.Column("input_tokens", sa.BigInteger),
    sa.Column("cached_input_tokens", sa.BigInteger),
    sa.Column("output_tokens", sa.BigInteger),
    sa.Column("requests", sa.BigInteger),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False, index=True),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("currency", CURRENCY, nullable=False),
    sa.Column("on_day", sa.Date, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)

alert_states = sa.Table(
    "alert_states",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("rule", sa.String(32), primary_key=True),
    sa.Column("level", sa.Integer, nullable=False),  # 0 ok, then the rule's levels in rising order
    sa.Column("fired_level", sa.Integer, nullable=False),  # highest level already announced this episode
    sa.Column("episode", sa.Integer, nullable=False),
    sa.Column("period", sa.String(16)),  # month or day the state belongs to, for period-scoped rules
    sa.Column("since", UTCDateTime()),
    sa.Column("notified_at", UTCDateTime()),
    sa.Column("reminders", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("peak_level", sa.Integer, nullable=False, server_default="0"),
    sa.Column("suppressed", sa.Boolean, nullable=False, server_default=sa.false()),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(255), nullable=False, unique=True),  # one message per channel and episode/day
    sa.Column("platform", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | claimed | sent | failed
    sa.Column("not_before", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("claimed_at", UTCDateTime()),
    sa.Column("sent_at", UTCDateTime()),
    sa.Column("chart_key", sa.String(64)),  # the chart in `charts`, stored once per summary fan-out
    sa.Index("ix_outbox_status_not_before", "status", "not_before"),
    sa.Index("ix_outbox_chart_key", "chart_key"),
)

charts = sa.Table(
    "charts",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # SHA-256 of the PNG
    sa.Column("png", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("platform", sa.String(16), nullable=False),
    sa.Column("user", sa.String(128), nullable=False),
    sa.Column("channel", sa.String(128)),
    sa.Column("command", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)

threshold_overrides = sa.Table(
    "threshold_overrides",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("warn_below", MONEY),
    sa.Column("critical_below", MONEY),
    sa.Column("updated_by", sa.String(160), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

snoozes = sa.Table(
    "snoozes",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("until", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(160), nullable=False),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("platform", sa.String(16), primary_key=True),
    sa.Column("channel", sa.String(128), primary_key=True),
    sa.Column("daily_summary", sa.String(5)),  # HH:MM, or null for alerts only
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("alerts", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(160), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

settings_kv = sa.Table(
    "settings_kv",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
