"""The model registry: which trained model versions exist and which one serves.

The domain types and the :class:`ModelRegistry` protocol live here; the SQL
implementation (SQLite locally, PostgreSQL in production) is in
``mlrec.backends.sql`` and an in-memory one in ``mlrec.backends.memory``.

Lifecycle: a new version is registered in ``staging``; promoting it to
``production`` archives the version that served before, so each model name has
at most one production version.

Model names follow one rule (:data:`MODEL_NAME_RULE`), checked by
:func:`check_model_name` wherever a version is registered; references typed by
people (``name`` or ``name:version``) are parsed by :func:`parse_model_ref`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from mlrec.core.errors import NotFoundError, ValidationError
from mlrec.models.artifacts import sha256_problem

__all__ = [
    "MAX_MODEL_VERSION",
    "MODEL_NAME_RULE",
    "ModelRegistry",
    "ModelVersion",
    "NewModelVersion",
    "Stage",
    "check_model_name",
    "check_new_version",
    "model_name_problem",
    "parse_model_ref",
]

MODEL_NAME_RULE = (
    "1 to 128 characters: ASCII letters, digits, '.', '_' and '-', starting with a letter or digit"
)
"""The model-name rule in words (error messages, docs)."""
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

MAX_MODEL_VERSION = 2**31 - 1
"""Largest version number a registry can hold (a 32-bit SQL ``INTEGER``)."""


def model_name_problem(name: object) -> str | None:
    """What is wrong with a model name under :data:`MODEL_NAME_RULE`, or None.

    The rule keeps names printable and unambiguous in a ``name:version`` reference
    (no ``:``), in file names and in rich/terminal output (no ``[``, spaces or
    control characters).
    """
    if not isinstance(name, str) or not name:
        return f"a model name must be {MODEL_NAME_RULE}; got an empty name"
    if _MODEL_NAME.fullmatch(name) is None:
        shown = name if len(name) <= 64 else name[:64] + "…"
        return f"bad model name {shown!r}: a model name must be {MODEL_NAME_RULE}"
    return None


def check_model_name(name: str) -> None:
    """Raise :class:`ValidationError` if ``name`` breaks :data:`MODEL_NAME_RULE`.

    Every :class:`ModelRegistry` implementation calls it in ``register``, and the CLI
    calls it before training, so a bad name never reaches storage.
    """
    problem = model_name_problem(name)
    if problem is not None:
        raise ValidationError(problem)


def check_new_version(model: NewModelVersion) -> None:
    """Raise :class:`ValidationError` if ``model`` cannot be registered: a name that
    breaks :data:`MODEL_NAME_RULE`, or an ``artifact_sha256`` that is not a sha256
    (64 lowercase hex digits; serving replicas use it as a directory name).

    Every :class:`ModelRegistry` implementation calls it in ``register``.
    """
    check_model_name(model.name)
    problem = sha256_problem(model.artifact_sha256)
    if problem is not None:
        raise ValidationError(problem)


def parse_model_ref(ref: str) -> tuple[str, int | None]:
    """Split ``name`` or ``name:version`` into the name and the version (or None).

    Raises:
        ValidationError: not of that form (a version that is not ASCII digits).
        NotFoundError: a version outside ``1..MAX_MODEL_VERSION``: no registry can
            hold it, so it is reported as the missing version it is.
    """
    name, colon, version = ref.rpartition(":")
    if not colon:
        return ref, None
    if not name or not (version.isascii() and version.isdigit()):
        raise ValidationError(f"bad model reference {ref!r}: expected NAME or NAME:VERSION")
    number = int(version)
    if not 1 <= number <= MAX_MODEL_VERSION:
        what = f"{name}:{number}"
        raise NotFoundError(f"no model version {what!r} in the registry")
    return name, number


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
        artifact_sha256: the artifact's content sha256 (manifest and arrays, as
            ``Recommender.save`` returns it; see :mod:`mlrec.models.artifacts`).
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
        """Record a new version (``max(version)+1`` for its name) in ``staging``.

        Raises:
            ValidationError: the name breaks :data:`MODEL_NAME_RULE`, or the
                artifact sha256 is not one (see :func:`check_new_version`).
        """
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
