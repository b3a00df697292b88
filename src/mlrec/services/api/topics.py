"""Creating the event topics at start-up without letting a Kafka outage block it.

A liveness probe restarts a pod that does not answer ``/health`` in time, so the API
tries once, briefly, and otherwise keeps trying in a background thread while the
durable spool takes the events; ``/ready`` reports the topics missing meanwhile.
"""

from __future__ import annotations

import logging
import threading

from mlrec.backends.factory import EventLog
from mlrec.core.errors import MlrecError

__all__ = ["TopicSetup"]

log = logging.getLogger(__name__)


class TopicSetup:
    """Creates the event log's topics, retrying with backoff until it succeeds.

    Args:
        event_log: the log to create the topics on.
        timeout_s: bound on each attempt's round trips.
        max_delay_s: longest wait between two attempts.
    """

    def __init__(
        self, event_log: EventLog, timeout_s: float = 3.0, max_delay_s: float = 30.0
    ) -> None:
        self._event_log = event_log
        self._timeout_s = timeout_s
        self._max_delay_s = max_delay_s
        self._stop = threading.Event()
        self.done = False
        self.error: str | None = None

    def start(self) -> None:
        """Try now; on failure keep trying in a daemon thread (until :meth:`stop`)."""
        if self._attempt():
            return
        log.warning("could not create the topics (%s); retrying in the background", self.error)
        threading.Thread(target=self._retry, name="ensure-topics", daemon=True).start()

    def stop(self) -> None:
        """Stop retrying."""
        self._stop.set()

    def _attempt(self) -> bool:
        try:
            self._event_log.ensure_topics(timeout_s=self._timeout_s)
        except MlrecError as exc:
            self.error = str(exc)
            return False
        self.done, self.error = True, None
        return True

    def _retry(self) -> None:
        delay = 1.0
        while not self._stop.wait(delay):
            if self._attempt():
                log.info("created the topics")
                return
            log.debug("creating the topics failed again: %s", self.error)
            delay = min(2 * delay, self._max_delay_s)
