"""Everything the API process holds: built once at start-up, closed at shutdown."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from mlrec.events.log import EventProducer
from mlrec.events.processor import StreamProcessor
from mlrec.features.realtime import RealtimeFeatures
from mlrec.features.store import FeatureStore
from mlrec.services.api.breaker import CircuitBreaker
from mlrec.services.api.config import ApiSettings
from mlrec.services.api.model_server import ModelServer
from mlrec.services.api.service import RecommendationService
from mlrec.services.api.startup import BackgroundSetup

__all__ = ["ApiState"]

log = logging.getLogger(__name__)


@dataclass
class ApiState:
    """The API's collaborators (swapped for fakes in tests via ``create_app(state=...)``)."""

    settings: ApiSettings
    models: ModelServer
    features: FeatureStore
    realtime: RealtimeFeatures
    service: RecommendationService
    producer: EventProducer
    processor: StreamProcessor | None = None
    topics: BackgroundSetup | None = None
    closers: list[Any] = field(default_factory=list)
    feature_reads: CircuitBreaker = field(default_factory=CircuitBreaker)
    """Open for a second after a feature read found the online store unavailable, so
    reads answer 503 at once instead of each holding a thread for the store's timeout."""
    _processor_thread: threading.Thread | None = None

    def start_processor(self) -> None:
        """Run the embedded stream processor in a background thread."""
        if self.processor is None or self._processor_thread is not None:
            return
        self._processor_thread = threading.Thread(
            target=self.processor.run, name="stream-processor", daemon=True
        )
        self._processor_thread.start()

    def close(self) -> None:
        """Stop background work and release connections."""
        self.models.stop()
        if self.processor is not None:
            self.processor.stop()
        if self._processor_thread is not None:
            self._processor_thread.join(timeout=5)
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception:
                log.exception("error while closing")
