"""Pick a backend implementation from a URL, as Gorse picks its cache by prefix.

| URL                      | model / feature registry | online store          |
|--------------------------|--------------------------|-----------------------|
| ``memory://``            | in-process dicts         | in-process dicts      |
| ``sqlite:///path``       | SQLite (SQLAlchemy)      | SQLite file (WAL)     |
| ``postgresql://...``     | PostgreSQL (SQLAlchemy)  | n/a                   |
| ``redis://host:port/db`` | n/a                      | Redis hashes + Lua    |
"""

from __future__ import annotations

from mlrec.backends.memory import InMemoryFeatureRegistry, InMemoryModelRegistry
from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.backends.sql.feature_registry import SqlFeatureRegistry
from mlrec.backends.sql.migrate import upgrade_database
from mlrec.backends.sql.registry import SqlModelRegistry
from mlrec.core.clock import Clock
from mlrec.core.errors import ConfigurationError
from mlrec.features.online_store import OnlineStore
from mlrec.features.registry import FeatureRegistry
from mlrec.models.registry import ModelRegistry

__all__ = ["open_feature_registry", "open_model_registry", "open_online_store"]


def _sql(url: str, migrate: bool) -> bool:
    if url.startswith(("sqlite:", "postgres")):
        if migrate:
            upgrade_database(url)
        return True
    return False


def open_model_registry(url: str, migrate: bool = True) -> ModelRegistry:
    """The model registry at ``url``: ``memory://``, ``sqlite:///path`` or ``postgresql://``.

    Args:
        url: where the metadata lives.
        migrate: bring the schema up to date first (idempotent).
    """
    if url.startswith("memory://"):
        return InMemoryModelRegistry()
    if _sql(url, migrate):
        return SqlModelRegistry(url)
    raise ConfigurationError(
        f"unsupported registry URL {url!r}: use memory://, sqlite:/// or postgresql://"
    )


def open_feature_registry(url: str, migrate: bool = True) -> FeatureRegistry:
    """The feature registry at ``url`` (same URLs as :func:`open_model_registry`)."""
    if url.startswith("memory://"):
        return InMemoryFeatureRegistry()
    if _sql(url, migrate):
        return SqlFeatureRegistry(url)
    raise ConfigurationError(
        f"unsupported registry URL {url!r}: use memory://, sqlite:/// or postgresql://"
    )


def open_online_store(url: str, clock: Clock | None = None) -> OnlineStore:
    """The online feature store at ``url``: ``memory://``, ``sqlite:///path`` or ``redis://``."""
    if url.startswith("memory://"):
        return InMemoryOnlineStore(clock)
    if url.startswith("sqlite:///"):
        from mlrec.backends.sqlite_features import SqliteOnlineStore

        return SqliteOnlineStore(url.removeprefix("sqlite:///"), clock=clock)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from mlrec.backends.redis_features import RedisOnlineStore

        return RedisOnlineStore(url, clock=clock)
    raise ConfigurationError(
        f"unsupported online store URL {url!r}: use memory://, sqlite:///path or redis://"
    )
