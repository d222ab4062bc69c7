"""Alembic environment: migrations run on the connection the store hands over."""

from __future__ import annotations

from alembic import context

from bot.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("creditbot migrations run through bot.store.migrate(), which provides the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
