"""Alert states remember the loudest announced level and alerts held back by a snooze.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add peak_level and suppressed."""
    with op.batch_alter_table("alert_states") as batch:
        batch.add_column(sa.Column("peak_level", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("suppressed", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("alert_states") as batch:
        batch.drop_column("suppressed")
        batch.drop_column("peak_level")
