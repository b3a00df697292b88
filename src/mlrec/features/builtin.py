"""Definitions mlrec ships: the user and item entities and their interaction aggregates.

``mlrec features apply`` registers these when given no file; they are what
``mlrec features materialize`` fills from an interaction log.
"""

from __future__ import annotations

from mlrec.features.definitions import Entity, Feature, FeatureView, ValueType

__all__ = ["BUILTIN_ENTITIES", "BUILTIN_VIEWS", "aggregate_view"]

BUILTIN_ENTITIES = [
    Entity("user", "A person who interacts with items."),
    Entity("item", "Something that can be recommended."),
]


def aggregate_view(entity: str, ttl_seconds: float = 7 * 86400) -> FeatureView:
    """Interaction aggregates of ``user`` or ``item`` (see ``InteractionAggregates``)."""
    return FeatureView(
        name=f"{entity}_stats",
        entity=entity,
        features=(
            Feature("interaction_count", ValueType.INT, 0, "Interactions in the log."),
            Feature("distinct_count", ValueType.INT, 0, "Distinct counterparts interacted with."),
            Feature("weight_sum", ValueType.FLOAT, 0.0, "Sum of interaction weights."),
            Feature("weight_mean", ValueType.FLOAT, None, "Mean interaction weight."),
            Feature("last_seen", ValueType.FLOAT, None, "Epoch seconds of the latest one."),
        ),
        ttl_seconds=ttl_seconds,
        description=f"Batch aggregates of each {entity}'s interactions.",
        owner="mlrec",
        tags={"source": "interactions"},
    )


BUILTIN_VIEWS = [aggregate_view("user"), aggregate_view("item")]
