"""The stream processor's wiring: interaction events in, real-time features out.

``mlrec serve stream`` runs it on Kafka; the API runs it in-process on the embedded
log. Both use :func:`realtime_sink` so the event -> feature mapping lives once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlrec.events.schemas import InteractionEvent
from mlrec.features.realtime import Interaction, RealtimeFeatures

__all__ = ["realtime_sink"]


def realtime_sink(realtime: RealtimeFeatures) -> Callable[[Sequence[InteractionEvent]], int]:
    """The processor's sink: apply events to the real-time features, once per event id.

    Ids were validated when the events were parsed (same rules as the feature store's),
    so the features are told not to check them again.
    """

    def apply(events: Sequence[InteractionEvent]) -> int:
        return realtime.record(
            [Interaction(e.user_id, e.item_id, e.timestamp, e.weight, e.event_id) for e in events],
            validated=True,
        )

    return apply
