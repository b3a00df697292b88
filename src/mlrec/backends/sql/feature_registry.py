"""The feature registry on SQL (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import Engine, Row, func, select, text, update

from mlrec.backends.sql.engine import begin_write, create_sql_engine
from mlrec.backends.sql.schema import feature_entities, feature_views
from mlrec.core.errors import NotFoundError
from mlrec.features.definitions import Entity, FeatureView
from mlrec.features.registry import AppliedView, RegisteredView, next_version

__all__ = ["SqlFeatureRegistry"]

# pg_advisory_xact_lock key serializing apply() on one PostgreSQL database
_APPLY_LOCK_KEY = 0x6D6C7265635F6672  # "mlrec_fr"


def _to_registered(row: Row[Any]) -> RegisteredView:
    created = row.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return RegisteredView(
        view=FeatureView.from_dict(dict(row.spec)),
        version=row.version,
        fingerprint=row.fingerprint,
        created_at=created,
        materialized_until=row.materialized_until,
    )


def _latest_ids() -> Any:
    return (
        select(feature_views.c.name, func.max(feature_views.c.version).label("version"))
        .group_by(feature_views.c.name)
        .subquery()
    )


class SqlFeatureRegistry:
    """:class:`~mlrec.features.registry.FeatureRegistry` over SQLAlchemy.

    The schema must exist (``upgrade_database(url)``).
    """

    def __init__(self, url_or_engine: str | Engine) -> None:
        self.engine = (
            create_sql_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        )

    def apply(self, entities: list[Entity], views: list[FeatureView]) -> list[AppliedView]:
        applied: list[AppliedView] = []
        with begin_write(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                # two applies at once would both read "no version yet" and insert the
                # same one; SQLite serializes them by BEGIN IMMEDIATE. Released at commit.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPLY_LOCK_KEY})
            for entity in entities:
                exists = conn.execute(
                    select(feature_entities.c.name).where(feature_entities.c.name == entity.name)
                ).first()
                values = {"name": entity.name, "description": entity.description}
                if exists:
                    conn.execute(
                        update(feature_entities)
                        .where(feature_entities.c.name == entity.name)
                        .values(**values)
                    )
                else:
                    conn.execute(feature_entities.insert().values(**values))
            for view in views:
                # every version: a feature removed and declared again keeps its type
                versions = conn.execute(
                    select(feature_views)
                    .where(feature_views.c.name == view.name)
                    .order_by(feature_views.c.version)
                ).all()
                previous = _to_registered(versions[-1]) if versions else None
                earlier = [FeatureView.from_dict(dict(row.spec)) for row in versions[:-1]]
                result = next_version(previous, view, earlier)
                if result.created or result.changed:
                    current = result.registered
                    conn.execute(
                        feature_views.insert().values(
                            name=view.name,
                            version=current.version,
                            fingerprint=current.fingerprint,
                            spec=view.to_dict(),
                            created_at=current.created_at,
                            materialized_until=current.materialized_until,
                        )
                    )
                applied.append(result)
        return applied

    def get_view(self, name: str) -> RegisteredView:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(feature_views)
                .where(feature_views.c.name == name)
                .order_by(feature_views.c.version.desc())
                .limit(1)
            ).first()
        if row is None:
            raise NotFoundError(f"unknown feature view {name!r}")
        return _to_registered(row)

    def list_views(self) -> list[RegisteredView]:
        latest = _latest_ids()
        query = (
            select(feature_views)
            .join(
                latest,
                (feature_views.c.name == latest.c.name)
                & (feature_views.c.version == latest.c.version),
            )
            .order_by(feature_views.c.name)
        )
        with self.engine.connect() as conn:
            return [_to_registered(row) for row in conn.execute(query)]

    def list_entities(self) -> list[Entity]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(feature_entities).order_by(feature_entities.c.name))
            return [Entity(row.name, row.description) for row in rows]

    def set_materialized_until(self, name: str, timestamp: float) -> None:
        current = self.get_view(name)
        with begin_write(self.engine) as conn:
            conn.execute(
                update(feature_views)
                .where(feature_views.c.name == name, feature_views.c.version == current.version)
                .values(materialized_until=timestamp)
            )
