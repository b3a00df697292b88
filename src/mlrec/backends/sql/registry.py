"""The model registry on SQL (SQLite or PostgreSQL)."""

from __future__ import annotations

import random
import time
import zlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, func, select, text, update
from sqlalchemy.exc import IntegrityError

from mlrec.backends.sql.engine import begin_write, create_sql_engine
from mlrec.backends.sql.schema import model_versions
from mlrec.core.errors import NotFoundError
from mlrec.models.registry import (
    MAX_MODEL_VERSION,
    ModelVersion,
    NewModelVersion,
    Stage,
    check_new_version,
)

__all__ = ["SqlModelRegistry"]

_REGISTER_ATTEMPTS = 5


def _to_version(row: Row[Any]) -> ModelVersion:
    created = row.created_at
    if created.tzinfo is None:  # SQLite drops the zone; we always store UTC
        created = created.replace(tzinfo=UTC)
    return ModelVersion(
        name=row.name,
        version=row.version,
        algorithm=row.algorithm,
        artifact_sha256=row.artifact_sha256,
        artifact_path=row.artifact_path,
        params=dict(row.params),
        dataset=row.dataset,
        metrics={k: float(v) for k, v in dict(row.metrics).items()},
        stage=Stage(row.stage),
        created_at=created,
    )


class SqlModelRegistry:
    """:class:`~mlrec.models.registry.ModelRegistry` over a SQLAlchemy engine.

    The schema must exist (``upgrade_database(url)``).

    Args:
        url_or_engine: a database URL or an existing engine.
    """

    def __init__(self, url_or_engine: str | Engine) -> None:
        self.engine = (
            create_sql_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        )

    def register(self, model: NewModelVersion) -> ModelVersion:
        check_new_version(model)
        # Two trainers may register the same name at once: PostgreSQL serializes them
        # with an advisory lock, SQLite with its write lock (BEGIN IMMEDIATE, taken
        # before the read of the latest number); elsewhere the unique constraint
        # rejects the loser, which retries with the next number.
        for attempt in range(_REGISTER_ATTEMPTS):
            try:
                with begin_write(self.engine) as conn:
                    if conn.dialect.name == "postgresql":
                        # serialize registrations of one name; released at commit
                        conn.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"),
                            {"key": zlib.crc32(model.name.encode())},
                        )
                    latest = conn.execute(
                        select(func.max(model_versions.c.version)).where(
                            model_versions.c.name == model.name
                        )
                    ).scalar()
                    version = (latest or 0) + 1
                    values = {
                        "name": model.name,
                        "version": version,
                        "algorithm": model.algorithm,
                        "artifact_sha256": model.artifact_sha256,
                        "artifact_path": model.artifact_path,
                        "params": model.params,
                        "dataset": model.dataset,
                        "metrics": model.metrics,
                        "stage": Stage.STAGING.value,
                        "created_at": datetime.now(UTC),
                    }
                    conn.execute(model_versions.insert().values(**values))
                return self.get(model.name, version)
            except IntegrityError:
                if attempt == _REGISTER_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0.001, 0.02) * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        query = select(model_versions).where(model_versions.c.name == name)
        if version is None:
            query = query.order_by(model_versions.c.version.desc()).limit(1)
        else:
            query = query.where(model_versions.c.version == version)
        row = None
        # a version no INTEGER column can hold is not stored: do not send it (SQLite
        # raises OverflowError binding it, PostgreSQL "integer out of range")
        if version is None or 1 <= version <= MAX_MODEL_VERSION:
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
        if row is None:
            what = f"{name}:{version}" if version is not None else name
            raise NotFoundError(f"no model version {what!r} in the registry")
        return _to_version(row)

    def list(self, name: str | None = None, stage: Stage | None = None) -> list[ModelVersion]:
        query = select(model_versions).order_by(
            model_versions.c.created_at.desc(), model_versions.c.id.desc()
        )
        if name is not None:
            query = query.where(model_versions.c.name == name)
        if stage is not None:
            query = query.where(model_versions.c.stage == stage.value)
        with self.engine.connect() as conn:
            return [_to_version(row) for row in conn.execute(query)]

    def promote(self, name: str, version: int, stage: Stage = Stage.PRODUCTION) -> ModelVersion:
        with begin_write(self.engine) as conn:
            # Lock the name's versions first (FOR UPDATE on PostgreSQL, in id order so
            # that two promotes never deadlock; SQLite's write lock is already held):
            # a concurrent promote of the name waits until this one commits, then
            # sees its production version and archives it. Without the lock both
            # archive the previous one and each sets its own: two production versions.
            locked = conn.execute(
                select(model_versions.c.version)
                .where(model_versions.c.name == name)
                .order_by(model_versions.c.id)
                .with_for_update()
            ).scalars()
            if version not in set(locked):
                what = f"{name}:{version}"
                raise NotFoundError(f"no model version {what!r} in the registry")
            if stage is Stage.PRODUCTION:
                conn.execute(
                    update(model_versions)
                    .where(
                        model_versions.c.name == name,
                        model_versions.c.stage == Stage.PRODUCTION.value,
                        model_versions.c.version != version,
                    )
                    .values(stage=Stage.ARCHIVED.value)
                )
            conn.execute(
                update(model_versions)
                .where(model_versions.c.name == name, model_versions.c.version == version)
                .values(stage=stage.value)
            )
        return self.get(name, version)

    def production(self, name: str) -> ModelVersion | None:
        found = self.list(name, Stage.PRODUCTION)
        return found[0] if found else None
