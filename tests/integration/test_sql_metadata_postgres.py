"""PostgreSQL: concurrent promotes, registrations, artifact puts and migrations; crashes."""

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.contracts.sql_metadata import SqlMetadataContract

pytestmark = pytest.mark.integration


class TestPostgresMetadata(SqlMetadataContract):
    @pytest.fixture
    def fresh_url(self, database_url: str, unique_name: str) -> Iterator[Callable[[], str]]:
        """New, empty databases (as ``fresh_database_url``), dropped afterwards."""
        url = make_url(database_url)
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        names: list[str] = []

        def make() -> str:
            name = f"{unique_name}_{len(names)}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            names.append(name)
            return url.set(database=name).render_as_string(hide_password=False)

        try:
            yield make
            with admin.connect() as conn:
                for name in names:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
