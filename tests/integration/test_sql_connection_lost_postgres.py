"""PostgreSQL: a connection lost during a statement is reported as the database being
unavailable (callers print one line or degrade), and the next use reconnects."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mlrec.backends.sql.engine import create_sql_engine
from mlrec.core.errors import BackendUnavailableError

pytestmark = pytest.mark.integration


def test_a_connection_lost_mid_statement_is_unavailable_then_reconnects(
    database_url: str,
) -> None:
    engine = create_sql_engine(database_url)
    try:
        with engine.connect() as conn, pytest.raises(BackendUnavailableError) as info:
            conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        message = str(info.value)
        assert message.startswith("lost the connection to the database postgresql")
        assert ":***@" in message  # the password masked
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
