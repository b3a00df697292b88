"""The test PostgreSQL is real: SQLAlchemy 2 + psycopg 3 write a table and read it back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    select,
    text,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


def test_table_write_is_read_back_from_a_new_connection(engine: Engine, unique_name: str) -> None:
    assert engine.dialect.name == "postgresql"
    assert engine.dialect.driver == "psycopg"
    metadata = MetaData()
    scores = Table(
        unique_name,
        metadata,
        Column("id", Integer, primary_key=True),
        Column("item", String(64), nullable=False),
        Column("score", Float, nullable=False),
    )
    rows = [{"id": i, "item": f"item-{i}", "score": i / 10} for i in range(1, 6)]
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(scores.insert(), rows)

        engine.dispose()  # force a fresh server connection: the rows were committed
        with engine.connect() as conn:
            read = conn.execute(select(scores).order_by(scores.c.id)).mappings().all()

        assert [dict(r) for r in read] == rows
    finally:
        metadata.drop_all(engine)


def test_fresh_database_is_empty_and_isolated(fresh_database_url: str) -> None:
    engine = create_engine(fresh_database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.current_database())).scalar_one() != "mlrec"
            tables = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
        assert tables == 0
    finally:
        engine.dispose()
