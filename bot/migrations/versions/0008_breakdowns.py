"""Where the money goes: breakdown days and parts (per account, UTC day, dimension and entry).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MONEY = sa.String(48)
CURRENCY = sa.String(16)


def upgrade() -> None:
    """Create `breakdown_days` and `breakdown_parts` (empty: the first refresh fills them)."""
    op.create_table(
        "breakdown_days",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("reported", sa.Boolean, nullable=False),
        sa.Column("final", sa.Boolean, nullable=False),
        sa.Column("currency", CURRENCY),
        sa.Column("total", MONEY),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", "day", name="pk_breakdown_days"),
    )
    op.create_table(
        "breakdown_parts",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("dimension", sa.String(16), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("cost", MONEY),
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("cached_input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
        sa.Column("requests", sa.BigInteger),
        sa.PrimaryKeyConstraint("account", "dimension", "day", "key", name="pk_breakdown_parts"),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("breakdown_parts")
    op.drop_table("breakdown_days")
