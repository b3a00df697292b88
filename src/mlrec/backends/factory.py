"""Pick a backend implementation from a URL, as Gorse picks its cache by prefix."""

from __future__ import annotations

from mlrec.backends.memory import InMemoryModelRegistry
from mlrec.backends.sql.migrate import upgrade_database
from mlrec.backends.sql.registry import SqlModelRegistry
from mlrec.core.errors import ConfigurationError
from mlrec.models.registry import ModelRegistry

__all__ = ["open_model_registry"]


def open_model_registry(url: str, migrate: bool = True) -> ModelRegistry:
    """The model registry at ``url``: ``memory://``, ``sqlite:///path`` or ``postgresql://``.

    Args:
        url: where the metadata lives.
        migrate: bring the schema up to date first (idempotent).
    """
    if url.startswith("memory://"):
        return InMemoryModelRegistry()
    if url.startswith(("sqlite:", "postgres")):
        if migrate:
            upgrade_database(url)
        return SqlModelRegistry(url)
    raise ConfigurationError(
        f"unsupported registry URL {url!r}: use memory://, sqlite:/// or postgresql://"
    )
