"""Run the Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from mlrec.backends.sql.engine import IMMEDIATE, create_sql_engine, database_error
from mlrec.core.errors import BackendError

__all__ = ["alembic_config", "upgrade_database"]

MIGRATIONS = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key serializing upgrade_database on one PostgreSQL database
# (advisory locks are per database); any constant bigint no other lock of ours uses.
_MIGRATION_LOCK_KEY = 0x6D6C7265635F6D67  # "mlrec_mg"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at our migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision`` (idempotent, safe to run at once).

    Every pending revision runs in one transaction: a failure or a crash half-way
    leaves the schema as it was (on SQLite too, whose DDL the engine makes
    transactional). Processes upgrading one database at once (uvicorn workers,
    replicas starting together) are serialized: a transaction-level advisory lock on
    PostgreSQL, the write lock of ``BEGIN IMMEDIATE`` on SQLite, both taken before
    Alembic reads the current revision; the later ones then find the schema at
    ``revision`` and change nothing. A database already at ``revision`` is only read
    (no lock is taken), so workers starting on an up-to-date database never wait.

    Raises:
        BackendUnavailableError: the database cannot be reached or opened.
        BackendError: the schema cannot be brought up to date: the database is at a
            revision this mlrec does not know (a newer mlrec migrated it), or a
            statement failed (e.g. the user may not create tables).
    """
    config = alembic_config(url)
    engine = create_sql_engine(url)
    try:
        with engine.connect() as connection:
            with connection.begin():
                _check_known_revision(connection, config)
                if _at_revision(connection, config, revision):
                    return
            connection.execution_options(**{IMMEDIATE: True})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # released at commit or rollback, or when the connection drops
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                _repair_half_applied_first_migration(connection)
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
    except DBAPIError as exc:
        message = database_error(engine.url, "cannot update the schema of", exc.orig or exc)
        raise BackendError(message) from exc
    finally:
        engine.dispose()


def _check_known_revision(connection: Connection, config: Config) -> None:
    """Refuse a database at a revision this mlrec has no migration for.

    A newer mlrec migrated it: Alembic cannot tell what to do (its error was a
    traceback), and this version's queries may not match the schema.
    """
    script = ScriptDirectory.from_config(config)
    for head in MigrationContext.configure(connection).get_current_heads():
        try:
            script.get_revision(head)
        except CommandError:
            where = connection.engine.url.render_as_string(hide_password=True)
            raise BackendError(
                f"the database {where} is at schema revision {head!r}, which this mlrec does "
                f"not know (its latest is {script.get_current_head()!r}): a newer mlrec "
                "migrated it; upgrade mlrec to use it"
            ) from None


def _at_revision(connection: Connection, config: Config, revision: str) -> bool:
    """True if the database is at exactly ``revision`` (read without any lock)."""
    script = ScriptDirectory.from_config(config)
    try:
        wanted = {s.revision for s in script.get_revisions(revision) if s is not None}
    except CommandError:  # relative ("+1"): Alembic resolves it under the lock
        return False
    current = set(MigrationContext.configure(connection).get_current_heads())
    return bool(wanted) and current == wanted


def _repair_half_applied_first_migration(connection: Connection) -> None:
    """Undo what an interrupted first upgrade of an older mlrec left in a SQLite file.

    Before its DDL was transactional, SQLite committed ``CREATE TABLE`` at once: a
    crash during the first upgrade left ``model_versions`` with no revision recorded,
    and every later upgrade failed on "table model_versions already exists". Exactly
    that state (no revision, an empty ``model_versions``, no table of a later
    revision) is dropped, so the upgrade starts over. Nothing else is touched.
    """
    if connection.dialect.name != "sqlite":
        return
    tables = set(inspect(connection).get_table_names())
    later = {"feature_entities", "feature_views", "model_artifacts"}
    if not {"alembic_version", "model_versions"} <= tables or tables & later:
        return
    if connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one():
        return
    if connection.execute(text("SELECT count(*) FROM model_versions")).scalar_one():
        return
    connection.execute(text("DROP TABLE model_versions"))  # its indexes go with it
