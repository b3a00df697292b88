"""Versioned feature definitions in the metadata DB, and reconciling changes.

``apply`` records each view; a view whose definition changed gets a new version
(its previous versions are kept for history). The SQL implementation lives in
``mlrec.backends.sql``; an in-memory one in ``mlrec.backends.memory``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from mlrec.core.errors import ValidationError
from mlrec.features.definitions import Entity, FeatureView

__all__ = ["AppliedView", "FeatureRegistry", "RegisteredView", "next_version"]


@dataclass(frozen=True, slots=True)
class RegisteredView:
    """A stored version of a feature view."""

    view: FeatureView
    version: int
    fingerprint: str
    created_at: datetime
    materialized_until: float | None = None


@dataclass(frozen=True, slots=True)
class AppliedView:
    """What :meth:`FeatureRegistry.apply` did to one view.

    Attributes:
        registered: the now-current version.
        created: the view did not exist before.
        changed: the definition differs from the previous version.
        previous_ttl: the TTL of the previous version (None if created).
    """

    registered: RegisteredView
    created: bool
    changed: bool
    previous_ttl: float | None


def next_version(
    previous: RegisteredView | None, view: FeatureView, earlier: Sequence[FeatureView] = ()
) -> AppliedView:
    """What applying ``view`` over its current version means (the same for every store).

    Unchanged definitions keep their version; a new or changed one gets the next
    version, carrying the materialization watermark over. The caller stores
    ``registered`` when ``created or changed``.

    Args:
        previous: the current version, if any.
        view: the definition being applied.
        earlier: the versions before ``previous``, oldest first.

    Raises:
        ValidationError: a feature changes its type from the last version that
            declared it (``previous`` or an earlier one: removing a feature leaves its
            values stored). Values already stored hold the old type's bytes, which the
            new type would misread (an ``int`` read as a ``float``) or fail to read; a
            feature of another type needs a new name.
    """
    if previous is not None:
        history = [*earlier, previous.view]
        for feature in view.features:
            old = next(
                (f for v in reversed(history) for f in v.features if f.name == feature.name),
                None,
            )
            if old is not None and old.dtype is not feature.dtype:
                raise ValidationError(
                    f"feature view {view.name!r}: feature {feature.name!r} cannot change type"
                    f" from {old.dtype.value} to {feature.dtype.value} (values already stored"
                    " would be misread); give the new feature another name"
                )
    fingerprint = view.fingerprint()
    if previous is not None and previous.fingerprint == fingerprint:
        return AppliedView(previous, False, False, previous.view.ttl_seconds)
    current = RegisteredView(
        view=view,
        version=previous.version + 1 if previous else 1,
        fingerprint=fingerprint,
        created_at=datetime.now(UTC),
        materialized_until=previous.materialized_until if previous else None,
    )
    return AppliedView(
        current,
        created=previous is None,
        changed=previous is not None,
        previous_ttl=previous.view.ttl_seconds if previous else None,
    )


class FeatureRegistry(Protocol):
    """Stores entities and versioned feature views."""

    def apply(self, entities: list[Entity], views: list[FeatureView]) -> list[AppliedView]:
        """Record entities and views; a changed view gets version ``previous + 1``.

        Raises:
            ValidationError: a view changes the type of one of its features (see
                :func:`next_version`).
        """
        ...

    def get_view(self, name: str) -> RegisteredView:
        """The current version of a view; :class:`NotFoundError` if unknown."""
        ...

    def list_views(self) -> list[RegisteredView]:
        """Current versions of every view, by name."""
        ...

    def list_entities(self) -> list[Entity]:
        """Every registered entity, by name."""
        ...

    def set_materialized_until(self, name: str, timestamp: float) -> None:
        """Record the watermark of incremental materialization for a view."""
        ...
