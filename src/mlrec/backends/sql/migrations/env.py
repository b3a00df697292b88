"""Alembic environment: uses the connection handed over by ``upgrade_database``."""

from __future__ import annotations

from alembic import context

from mlrec.backends.sql.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when run from the alembic CLI
    from mlrec.backends.sql.engine import create_sql_engine

    connection = create_sql_engine(context.config.attributes["url"]).connect()

context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
