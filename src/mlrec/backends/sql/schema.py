"""Table definitions. Changing them needs a new migration in ``migrations/versions``."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

__all__ = ["metadata", "model_versions"]

metadata = MetaData()

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("algorithm", String(64), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("artifact_path", String(1024), nullable=False),
    Column("params", JSON, nullable=False),
    Column("dataset", String(256), nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("stage", String(16), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
)
