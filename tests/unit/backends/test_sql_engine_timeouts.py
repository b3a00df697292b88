"""PostgreSQL connections carry libpq timeouts and keepalives, so a server that stops
answering fails a connection in seconds instead of hanging its thread."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from mlrec.backends.sql.engine import create_sql_engine


class RefusedError(Exception):
    pass


@pytest.fixture
def connect_kwargs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def connect(*_args: Any, **kwargs: Any) -> None:
        seen.append(kwargs)
        raise RefusedError

    monkeypatch.setattr(psycopg, "connect", connect)
    monkeypatch.setattr(psycopg.Connection, "connect", staticmethod(connect))
    return seen


def test_a_postgres_connection_gets_a_connect_timeout_and_tcp_keepalives(
    connect_kwargs: list[dict[str, Any]],
) -> None:
    engine = create_sql_engine("postgresql://u:p@127.0.0.1:5432/x")
    with pytest.raises(Exception):  # noqa: B017 - whatever wraps the refusal
        engine.connect()

    [kwargs] = connect_kwargs
    assert kwargs["connect_timeout"] == 10 and kwargs["keepalives"] == 1
    assert kwargs["tcp_user_timeout"] == 30_000


def test_a_timeout_set_in_the_url_wins(connect_kwargs: list[dict[str, Any]]) -> None:
    engine = create_sql_engine("postgresql://u:p@127.0.0.1:5432/x?connect_timeout=3")
    with pytest.raises(Exception):  # noqa: B017
        engine.connect()

    [kwargs] = connect_kwargs
    assert kwargs["connect_timeout"] == "3"
