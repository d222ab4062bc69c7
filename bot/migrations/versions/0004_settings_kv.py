"""A small key-value table for internal bookkeeping (e.g. the hash of the last Discord command sync).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create settings_kv."""
    op.create_table(
        "settings_kv",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_settings_kv"),
    )


def downgrade() -> None:
    """Drop settings_kv."""
    op.drop_table("settings_kv")
