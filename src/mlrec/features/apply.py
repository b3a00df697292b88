"""``mlrec features apply``: register definitions and reconcile the online store."""

from __future__ import annotations

from mlrec.features.definitions import Entity, FeatureView
from mlrec.features.online_store import OnlineStore
from mlrec.features.registry import AppliedView, FeatureRegistry

__all__ = ["apply_definitions"]


def apply_definitions(
    registry: FeatureRegistry,
    online: OnlineStore,
    entities: list[Entity],
    views: list[FeatureView],
) -> list[AppliedView]:
    """Record definitions, then make stored keys obey changed TTLs.

    A changed TTL is applied to keys that already exist (expiry = last write + new
    TTL), unlike stores that only apply a TTL to future writes. A lowered
    ``max_entities`` takes effect at the view's next write (the stores evict as
    they write).

    Raises:
        ValidationError: a feature changes its type.
    """
    applied = registry.apply(entities, views)
    for result in applied:
        view = result.registered.view
        if result.changed and result.previous_ttl != view.ttl_seconds:
            online.apply_ttl(view.name, view.ttl_seconds)
    return applied
