"""SQL metadata store (SQLite locally, PostgreSQL in production) via SQLAlchemy 2.

The schema is owned by Alembic migrations in ``migrations/``; call
:func:`upgrade_database` before use (the ``open_*`` functions of
:mod:`mlrec.backends.factory` do, unless given ``migrate=False``).
"""

from mlrec.backends.sql.engine import create_sql_engine, normalise_url
from mlrec.backends.sql.migrate import upgrade_database
from mlrec.backends.sql.registry import SqlModelRegistry

__all__ = ["SqlModelRegistry", "create_sql_engine", "normalise_url", "upgrade_database"]
