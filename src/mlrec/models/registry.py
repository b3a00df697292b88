"""The model registry: which trained model versions exist and which one serves.

The domain types and the :class:`ModelRegistry` protocol live here; the SQL
implementation (SQLite locally, PostgreSQL in production) is in
``mlrec.backends.sql`` and an in-memory one in ``mlrec.backends.memory``.

Lifecycle: a new version is registered in ``staging``; promoting it to
``production`` archives the version that served before, so each model name has
at most one production version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

__all__ = ["ModelRegistry", "ModelVersion", "NewModelVersion", "Stage"]


class Stage(StrEnum):
    """Where a model version is in its lifecycle."""

    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class NewModelVersion:
    """What a trainer knows about a model it wants to register.

    Attributes:
        name: the model's name (``"default"``, ``"movies-ease"``); versions count per name.
        algorithm: registry name of the algorithm (``"ease"``).
        artifact_sha256: checksum of the artifact's arrays (from ``Recommender.save``).
        artifact_path: where the artifact directory is, relative to the models dir.
        params: hyper-parameters used.
        dataset: what it was trained on.
        metrics: offline evaluation figures (``{"ndcg@10": 0.51}``).
    """

    name: str
    algorithm: str
    artifact_sha256: str
    artifact_path: str
    params: dict[str, Any] = field(default_factory=dict)
    dataset: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A registered model version, as stored."""

    name: str
    version: int
    algorithm: str
    artifact_sha256: str
    artifact_path: str
    params: dict[str, Any]
    dataset: str
    metrics: dict[str, float]
    stage: Stage
    created_at: datetime

    @property
    def ref(self) -> str:
        """``name:version``, as users type it."""
        return f"{self.name}:{self.version}"


class ModelRegistry(Protocol):
    """Metadata store of model versions.

    Implementations must make :meth:`register` assign versions without gaps or
    duplicates under concurrency, and :meth:`promote` atomic.
    """

    def register(self, model: NewModelVersion) -> ModelVersion:
        """Record a new version (``max(version)+1`` for its name) in ``staging``."""
        ...

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version, or the latest one when ``version`` is None.

        Raises:
            NotFoundError: no such model or version.
        """
        ...

    def list(self, name: str | None = None, stage: Stage | None = None) -> list[ModelVersion]:
        """Versions, newest first, optionally of one name and/or stage."""
        ...

    def promote(self, name: str, version: int, stage: Stage = Stage.PRODUCTION) -> ModelVersion:
        """Move a version to ``stage``; promoting to production archives the previous one."""
        ...

    def production(self, name: str) -> ModelVersion | None:
        """The version of ``name`` serving now, if any."""
        ...
