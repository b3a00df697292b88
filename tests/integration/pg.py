"""Helpers for integration tests against the real PostgreSQL."""

from sqlalchemy import text

from mlrec.backends.sql.engine import create_sql_engine

TABLES = (
    "feature_views",
    "feature_entities",
    "model_versions",
    "model_artifacts",
    "alembic_version",
)


def reset_schema(database_url: str) -> None:
    """Drop every mlrec table so the migrations run from scratch."""
    engine = create_sql_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {', '.join(TABLES)}"))
    engine.dispose()
