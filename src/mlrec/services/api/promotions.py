"""Follow ``mlrec.models.promoted`` so a promotion is served within a second.

Each API process follows the topic on its own, from its end and in no consumer group
(every replica must see every promotion, and a group per process would pile up on
the broker as processes come and go); the model loaded at start is already the
current one, and the registry poll in :class:`ModelServer` remains the fallback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from mlrec.events.log import EventFollower
from mlrec.services.api.model_server import ModelServer

__all__ = ["PromotionListener"]

log = logging.getLogger(__name__)


class PromotionListener:
    """Refreshes the model server whenever a promotion message arrives.

    Args:
        open_follower: opens the follower of ``mlrec.models.promoted`` (called in the
            listener's thread, again after a failure to open).
        models: the model server to refresh.
    """

    def __init__(self, open_follower: Callable[[], EventFollower], models: ModelServer) -> None:
        self.open_follower = open_follower
        self.models = models
        self.follower: EventFollower | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.follower is None:
                    # opened here, not at start: a Kafka follower looks up the topic
                    # first, which must not hold up the API when Kafka is down
                    self.follower = self.open_follower()
                records = self.follower.poll(10, 0.5)
                if records:
                    log.info("promotion announced: %s", records[-1].value[:200])
                    self.models.refresh(announced=True)
            except Exception:  # the log may be down: the registry poll still works
                log.debug("promotion listener poll failed", exc_info=True)
                self._stop.wait(1.0)

    def start(self) -> None:
        """Listen in a background thread."""
        self._thread = threading.Thread(target=self._run, name="promotions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.follower is not None:
            self.follower.close()
