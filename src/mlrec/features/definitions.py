"""Feature definitions: entities, typed features with defaults, and feature views with TTL.

Definitions are plain frozen dataclasses, declared in Python or loaded from YAML
(:mod:`mlrec.features.yaml_loader`), and versioned by a fingerprint of their content.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from mlrec.core.errors import ValidationError
from mlrec.core.ids import MAX_ENTITY_ID_LENGTH, check_entity_id

__all__ = [
    "MAX_ENTITY_ID_LENGTH",
    "MAX_TTL_SECONDS",
    "NAME",
    "Entity",
    "Feature",
    "FeatureView",
    "ValueType",
    "check_entity_id",
]

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_TTL_SECONDS = 10 * 365 * 86400.0
"""Longest TTL of a view (it must be a finite time the stores can expire keys by)."""


class ValueType(StrEnum):
    """The type of a feature's value; each has a compact binary encoding."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STRING = "string"
    FLOAT_LIST = "float_list"
    INT_LIST = "int_list"
    STRING_LIST = "string_list"


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValidationError(
            f"{kind} name {name!r} is invalid: use 1-63 lowercase letters, digits or _,"
            " starting with a letter"
        )


@dataclass(frozen=True, slots=True)
class Entity:
    """What features describe: ``user``, ``item``, or a user-defined key.

    Attributes:
        name: the entity's name, also the join key.
        description: for people browsing the catalogue.
    """

    name: str
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("entity", self.name)


@dataclass(frozen=True, slots=True)
class Feature:
    """One typed feature of a view.

    Attributes:
        name: unique within its view.
        dtype: the value type; writes of another type are rejected.
        default: returned when the value is missing or stale (``None`` = no value).
        description: for people browsing the catalogue.
    """

    name: str
    dtype: ValueType = ValueType.FLOAT
    default: Any = None
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        if self.name.startswith("_"):
            raise ValidationError(f"feature name {self.name!r} must not start with _")
        if self.default is not None:
            from mlrec.features.codec import encode  # the codec is built on this module

            encode(self, self.default)  # a default of another type is refused here


@dataclass(frozen=True, slots=True)
class FeatureView:
    """A group of features of one entity, written and expired together.

    Attributes:
        name: the view's name (``user_profile``).
        entity: the entity the view describes (its name).
        features: the typed features.
        ttl_seconds: values older than this are never served (and keys expire).
        online: served from the online store.
        offline: meant for offline (training) use; recorded with the definition (and
            its fingerprint) only: mlrec has no offline store and nothing reads it.
        description, owner, tags: catalogue metadata.
        max_entities: bound on how many entities the online store keeps for this
            view; the least recently written are evicted beyond it.
    """

    name: str
    entity: str
    features: tuple[Feature, ...]
    ttl_seconds: float
    online: bool = True
    offline: bool = True
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    max_entities: int | None = None

    def __post_init__(self) -> None:
        _check_name("feature view", self.name)
        _check_name("entity", self.entity)
        ttl = self.ttl_seconds
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or not 0 < ttl <= MAX_TTL_SECONDS
        ):
            # (NaN fails the comparison too)
            raise ValidationError(
                f"feature view {self.name!r}: ttl must be a number of seconds above 0 and"
                f" at most {MAX_TTL_SECONDS:.0f} (10 years), got {ttl}"
            )
        if not self.features:
            raise ValidationError(f"feature view {self.name!r} has no features")
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValidationError(f"feature view {self.name!r}: duplicate features {duplicates}")
        bound = self.max_entities
        if bound is not None and (
            isinstance(bound, bool) or not isinstance(bound, int) or bound < 1
        ):
            # the stores slice and LIMIT by it: 2.5 or "10" would fail every write
            raise ValidationError(
                f"feature view {self.name!r}: max_entities must be a whole number >= 1,"
                f" got {bound!r}"
            )

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> Feature:
        """The feature called ``name``; :class:`ValidationError` naming the view if unknown."""
        for candidate in self.features:
            if candidate.name == name:
                return candidate
        raise ValidationError(
            f"feature view {self.name!r} has no feature {name!r}; "
            f"it has {', '.join(self.feature_names)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (the form stored in the registry and in YAML)."""
        data = asdict(self)
        data["features"] = [{**asdict(f), "dtype": f.dtype.value} for f in self.features]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureView:
        """Inverse of :meth:`to_dict`; raises :class:`ValidationError` on a bad spec."""
        try:
            features = tuple(
                Feature(
                    name=f["name"],
                    dtype=ValueType(f.get("dtype", "float")),
                    default=f.get("default"),
                    description=f.get("description", ""),
                )
                for f in data["features"]
            )
            ttl = data.get("ttl_seconds", data.get("ttl"))
            if isinstance(ttl, bool):  # float(True) would be a TTL of 1 s
                raise ValidationError(f"feature view {data['name']!r}: ttl must be a number")
            return cls(
                name=data["name"],
                entity=data["entity"],
                features=features,
                ttl_seconds=float(ttl) if ttl is not None else 0.0,
                online=bool(data.get("online", True)),
                offline=bool(data.get("offline", True)),
                description=str(data.get("description", "")),
                owner=str(data.get("owner", "")),
                tags={str(k): str(v) for k, v in dict(data.get("tags") or {}).items()},
                max_entities=data.get("max_entities"),
            )
        except KeyError as exc:
            raise ValidationError(f"feature view spec is missing {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(f"feature view spec is invalid: {exc}") from None

    def fingerprint(self) -> str:
        """A short hash of the definition: equal definitions have equal fingerprints."""
        payload = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
