"""Readings, daily spend and the top-up ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the first tables."""
    op.create_table(
        "readings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("currency", sa.String(3)),
        sa.Column("balance", sa.String(48)),
        sa.Column("balance_source", sa.String(16)),
        sa.Column("spent_today", sa.String(48)),
        sa.Column("spent_month", sa.String(48)),
        sa.Column("report", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("error_kind", sa.String(16)),
        sa.PrimaryKeyConstraint("id", name="pk_readings"),
    )
    op.create_index("ix_readings_account_ok_id", "readings", ["account", "ok", "id"])
    op.create_index("ix_readings_fetched_at", "readings", ["fetched_at"])
    op.create_table(
        "daily_spend",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.String(48), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", "day", name="pk_daily_spend"),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("amount", sa.String(48), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("on_day", sa.Date, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
    )
    op.create_index("ix_ledger_account", "ledger", ["account"])


def downgrade() -> None:
    """Drop the first tables."""
    op.drop_table("ledger")
    op.drop_table("daily_spend")
    op.drop_table("readings")
