"""Recommendation models: the Recommender interface, algorithms, metrics, artifacts.

Algorithms are registered by name in :data:`ALGORITHMS`; build one with
:func:`create_model` (keyword params) or :func:`parse_params` (``"k=v"`` strings
from a CLI), and load a saved one with :func:`load_model`, which picks the class
from the artifact's manifest.

Example:
    >>> model = create_model("ease", l2=300).fit(train)           # doctest: +SKIP
    >>> model.save("models/ease-1")                                # doctest: +SKIP
    >>> load_model("models/ease-1").recommend("u1", k=5)           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlrec.core.errors import ModelError, NotFoundError, ValidationError
from mlrec.models.als import ALS
from mlrec.models.artifacts import read_artifact
from mlrec.models.base import (
    ItemFilter,
    Progress,
    Recommendation,
    Recommender,
    build_params,
    known_params,
    top_k,
)
from mlrec.models.blend import Blend
from mlrec.models.ease import EASE
from mlrec.models.gfcf import GFCF
from mlrec.models.itemknn import ItemKNN
from mlrec.models.metrics import evaluate, ranking_metrics
from mlrec.models.popular import MostPopular
from mlrec.models.rp3beta import RP3beta
from mlrec.models.sequential import SequentialCooccurrence

__all__ = [
    "ALGORITHMS",
    "ALS",
    "DEFAULT_ALGORITHM",
    "EASE",
    "GFCF",
    "Blend",
    "ItemFilter",
    "ItemKNN",
    "MostPopular",
    "Progress",
    "RP3beta",
    "Recommendation",
    "Recommender",
    "SequentialCooccurrence",
    "create_model",
    "evaluate",
    "load_model",
    "parse_params",
    "ranking_metrics",
    "top_k",
]

ALGORITHMS: dict[str, type[Recommender]] = {
    cls.algorithm: cls
    for cls in (MostPopular, EASE, GFCF, ItemKNN, RP3beta, ALS, SequentialCooccurrence, Blend)
}
"""Every algorithm by its registry name."""

DEFAULT_ALGORITHM = "blend"
"""What ``mlrec train`` fits when no algorithm is named (best on validation, see bench)."""


def _algorithm(name: str) -> type[Recommender]:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise NotFoundError(
            f"unknown algorithm {name!r}; known: {', '.join(sorted(ALGORITHMS))}"
        ) from None


def create_model(name: str, **params: Any) -> Recommender:
    """An unfitted model of algorithm ``name``.

    Raises:
        NotFoundError: no such algorithm.
        ValidationError: an unknown parameter name or a bad value.
    """
    cls = _algorithm(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValidationError(f"{name}: {exc}") from None


def _coerce(name: str, field: str, kind: Any, text: str) -> Any:
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValidationError(f"{name}: {field} must be a boolean, got {text!r}")
    if kind in (int, float, str):
        try:
            value = kind(text)
        except ValueError:
            raise ValidationError(
                f"{name}: {field} must be {kind.__name__}, got {text!r}"
            ) from None
        if kind is float and not math.isfinite(value):
            raise ValidationError(f"{name}: {field} must be a finite number, got {text!r}")
        return value
    raise ValidationError(f"{name}: {field} cannot be set from text")  # pragma: no cover


def parse_params(cls: type[Recommender], pairs: Sequence[str]) -> dict[str, Any]:
    """Turn ``["l2=300", "binary=false"]`` into typed keyword params of ``cls``.

    Values are coerced to the types of ``cls.Params``'s fields; the result is
    validated by building ``cls.Params``.

    Raises:
        ValidationError: a malformed pair, an unknown name or a bad value.
    """
    name = cls.algorithm
    hints = typing.get_type_hints(cls.Params)
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValidationError(f"{name}: expected key=value, got {pair!r}")
        if key not in fields:
            raise ValidationError(f"{name}: unknown parameter {key!r}; {known_params(fields)}")
        params[key] = _coerce(name, key, hints[key], value)
    build_params(name, cls.Params, params)
    return params


def load_model(directory: str | Path, expected_sha256: str | None = None) -> Recommender:
    """Load any saved model, choosing the class from its manifest.

    Raises:
        ModelError: not an artifact, an unknown algorithm, or a manifest or arrays
            this mlrec cannot read (see :meth:`Recommender.from_artifact`).
        ArtifactIntegrityError: the arrays or the manifest do not match their
            recorded checksums, or the content sha256 is not ``expected_sha256``.
        ValidationError: hyper-parameters this mlrec does not know or refuses.
    """
    artifact = read_artifact(Path(directory), expected_sha256)
    algorithm = artifact.manifest.get("algorithm")
    cls = ALGORITHMS.get(str(algorithm))
    if cls is None:
        raise ModelError(f"{directory}: unknown algorithm {algorithm!r} in the manifest")
    return cls.from_artifact(artifact)
