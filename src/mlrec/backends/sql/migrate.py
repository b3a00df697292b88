"""Run the Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from mlrec.backends.sql.engine import connect, create_sql_engine

__all__ = ["alembic_config", "upgrade_database"]

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at our migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision`` (idempotent).

    Raises:
        BackendUnavailableError: the database cannot be reached or opened.
    """
    config = alembic_config(url)
    engine = create_sql_engine(url)
    try:
        with connect(engine) as connection, connection.begin():
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
