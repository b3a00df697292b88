"""Engine construction shared by every SQL-backed store."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.engine import ExceptionContext

from mlrec.backends._sqlite import enable_wal
from mlrec.core.errors import BackendUnavailableError
from mlrec.core.urls import normalise_database_url, sqlite_file

__all__ = ["IMMEDIATE", "begin_write", "create_sql_engine", "database_error", "normalise_url"]

IMMEDIATE = "mlrec_sqlite_begin_immediate"
"""Execution option: on SQLite, begin the connection's transactions with ``BEGIN
IMMEDIATE`` (the write lock at once). See :func:`begin_write`."""


def normalise_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain ``postgresql://`` URLs.

    The same rule as ``MLREC_DATABASE_URL``'s check: see
    :func:`mlrec.core.urls.normalise_database_url`.

    Raises:
        ConfigurationError: an unsupported scheme, a host:port SQLAlchemy cannot
            read, or text that is not UTF-8.
    """
    return normalise_database_url(url)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the trainer writes; busy_timeout makes concurrent
    # writers from several processes wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    enable_wal(cursor)
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # The sqlite3 module's own transaction handling (before Python 3.12's autocommit
    # attribute) begins a transaction only before INSERT/UPDATE/DELETE: DDL and
    # SELECTs run outside any, each CREATE TABLE commits at once, a read-then-write
    # is not atomic. Switch it off; _sqlite_begin emits every BEGIN (SQLAlchemy's
    # documented recipe), and sqlite3 still commits and rolls back.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # Reads take no lock (WAL); a writer takes the write lock before reading, so that
    # a concurrent writer waits on the busy timeout instead of failing when it would
    # upgrade a read transaction whose snapshot went stale (SQLITE_BUSY_SNAPSHOT).
    immediate = conn.get_execution_options().get(IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_sql_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their directory created and WAL mode.

    Failing to connect, or losing the connection during a statement, raises
    :class:`BackendUnavailableError` (one line naming the database, its password
    masked) from every use of the engine.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=5,
            connect_args=_server_timeouts(url),
        )
    event.listen(engine, "handle_error", _unavailable)
    return engine


def database_error(url: URL, what: str, error: BaseException) -> str:
    """One line: ``<what> the database <url, password masked>: <the error's first line>``."""
    lines = str(error).strip().splitlines()
    reason = lines[0] if lines else type(error).__name__
    return f"{what} the database {url.render_as_string(hide_password=True)}: {reason}"


def _unavailable(context: ExceptionContext) -> None:
    # Callers (the CLI, the API's pollers) handle BackendUnavailableError; a raw
    # OperationalError from a database that went away after the first connection
    # was a traceback. A failed pre-ping is left alone: the pool reconnects.
    if context.is_pre_ping or context.engine is None:
        return
    if context.connection is None:
        what = "cannot connect to"
    elif context.is_disconnect:
        what = "lost the connection to"
    else:
        return
    message = database_error(context.engine.url, what, context.original_exception)
    raise BackendUnavailableError(message)


# libpq connection parameters: a server that stops answering (a network partition, a
# load balancer that dropped the connection silently) fails a connection in seconds
# instead of hanging the thread that uses it until the OS gives up (minutes).
_PG_TIMEOUTS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # ms: unacknowledged data fails the connection
}


def _server_timeouts(url: str) -> dict[str, Any]:
    """:data:`_PG_TIMEOUTS` for PostgreSQL, except those the URL's query sets itself."""
    if not url.startswith("postgresql"):
        return {}
    given = make_url(url).query
    return {name: value for name, value in _PG_TIMEOUTS.items() if name not in given}


def begin_write(engine: Engine) -> AbstractContextManager[Connection]:
    """``engine.begin()`` for a transaction that writes (commits at the end, or rolls back).

    On SQLite it begins with ``BEGIN IMMEDIATE``: the write lock is taken before the
    first read, so writers are serialized (each waits on the busy timeout for the
    one before) and whatever the transaction reads stays true until it commits. Use
    it for every read-then-write on an engine of :func:`create_sql_engine`: a plain
    ``engine.begin()`` on SQLite reads a snapshot and fails at its first write if
    another writer committed meanwhile. Elsewhere it is ``engine.begin()``.
    """
    return engine.execution_options(**{IMMEDIATE: True}).begin()
