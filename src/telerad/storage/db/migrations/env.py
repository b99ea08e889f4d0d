"""Alembic environment: the engine is handed in by telerad.storage.db.database.migrate."""

from __future__ import annotations

from alembic import context

from telerad.storage.db.tables import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
