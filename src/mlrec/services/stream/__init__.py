"""The stream processor's wiring: interaction events in, real-time features out.

``mlrec serve stream`` runs it on Kafka; the API runs it in-process on the embedded
log. Both use :func:`realtime_sink` so the event -> feature mapping lives once.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlrec.events.schemas import InteractionEvent
from mlrec.features.realtime import Interaction, PreparedInteractions, RealtimeFeatures

__all__ = ["RealtimeSink", "realtime_sink"]


class RealtimeSink:
    """The processor's sink: apply events to the real-time features, once per event id.

    Staged (:class:`~mlrec.events.processor.StagedSink`): the pipelined processor
    prepares a batch (CPU: conversion, encoding) on its own thread while the previous
    batch is applied (I/O), so the feature store is kept busy.

    Ids were validated when the events were parsed (same rules as the feature store's),
    so the features are told not to check them again.

    Windowed (:class:`~mlrec.events.processor.WindowedSink`): its ``dedup_window`` is
    the features' (:class:`~mlrec.features.realtime.RealtimeConfig`), so a processor
    whose redelivery (two batches) would exceed it fails to start.
    """

    def __init__(self, realtime: RealtimeFeatures) -> None:
        self.realtime = realtime

    @property
    def dedup_window(self) -> int:
        """Event ids remembered per user: the processor refuses a ``max_batch`` whose
        redelivery would exceed it (see :class:`~mlrec.events.processor.WindowedSink`)."""
        return self.realtime.config.dedup_window

    def prepare(self, events: Sequence[InteractionEvent]) -> PreparedInteractions:
        """Convert and encode a batch (no I/O)."""
        return self.realtime.prepare(
            [Interaction(e.user_id, e.item_id, e.timestamp, e.weight, e.event_id) for e in events],
            validated=True,
        )

    def apply(self, prepared: object) -> int:
        """Apply a prepared batch; how many events were new."""
        if not isinstance(prepared, PreparedInteractions):
            raise TypeError(f"expected a batch from prepare(), got {prepared!r}")
        return self.realtime.apply(prepared)

    def __call__(self, events: Sequence[InteractionEvent]) -> int:
        return self.apply(self.prepare(events))


def realtime_sink(realtime: RealtimeFeatures) -> RealtimeSink:
    """The sink that applies events to ``realtime`` (see :class:`RealtimeSink`)."""
    return RealtimeSink(realtime)
