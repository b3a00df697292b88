"""Table definitions. Changing them needs a new migration in ``migrations/versions``."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "feature_entities",
    "feature_views",
    "metadata",
    "model_artifacts",
    "model_versions",
]

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

feature_entities = Table(
    "feature_entities",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", String(1024), nullable=False),
)

feature_views = Table(
    "feature_views",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("materialized_until", Float, nullable=True),
    UniqueConstraint("name", "version", name="uq_feature_views_name_version"),
)

model_artifacts = Table(
    "model_artifacts",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("manifest", Text, nullable=False),
    Column("arrays", LargeBinary, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
