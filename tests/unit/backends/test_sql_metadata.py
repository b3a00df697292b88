"""SQLite: concurrent promotes, registrations, artifact puts and migrations; crashes."""

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from mlrec.backends.sql.engine import create_sql_engine
from mlrec.backends.sql.migrate import upgrade_database
from mlrec.backends.sql.registry import SqlModelRegistry
from tests.contracts.model_registry import new
from tests.contracts.sql_metadata import HEAD, OUR_TABLES, SqlMetadataContract, schema_state


class TestSqliteMetadata(SqlMetadataContract):
    @pytest.fixture
    def fresh_url(self, tmp_path: Path) -> Callable[[], str]:
        made: list[str] = []

        def make() -> str:
            made.append(f"sqlite:///{tmp_path / f'meta{len(made)}.db'}")
            return made[-1]

        return make


def leave_half_migrated(url: str) -> None:
    """Only model_versions and an empty alembic_version: what a crash during the first
    upgrade left before SQLite DDL was transactional."""
    engine = create_sql_engine(url)
    with engine.begin() as conn:
        for table in ("feature_views", "feature_entities", "model_artifacts"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("DELETE FROM alembic_version"))
    engine.dispose()


def test_a_file_left_half_migrated_by_an_older_mlrec_is_repaired(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    upgrade_database(url)
    leave_half_migrated(url)
    assert schema_state(url) == ({"model_versions"}, [])
    upgrade_database(url)
    assert schema_state(url) == (OUR_TABLES, [HEAD])
    assert SqlModelRegistry(url).register(new()).version == 1


def test_a_model_versions_table_with_rows_but_no_revision_is_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    upgrade_database(url)
    SqlModelRegistry(url).register(new())
    leave_half_migrated(url)
    with pytest.raises(Exception, match="already exists"):
        upgrade_database(url)
    assert schema_state(url) == ({"model_versions"}, [])
