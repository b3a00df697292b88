"""Retention of the embedded event log: without it a long-running local system's
``events.db`` would only grow (Kafka brokers apply ``retention.ms`` themselves)."""

from __future__ import annotations

import logging

from mlrec.backends.factory import EventLog
from mlrec.core.errors import MlrecError
from mlrec.services.api.periodic import Periodic

__all__ = ["LogRetention"]

log = logging.getLogger(__name__)


class LogRetention:
    """Deletes embedded-log records older than ``retention_s`` every ``interval_s``.

    Args:
        event_log: the log (nothing is done for Kafka).
        retention_s: how long a record is kept.
        interval_s: how often old records are looked for.
    """

    def __init__(self, event_log: EventLog, retention_s: float, interval_s: float = 600.0):
        self._event_log = event_log
        self._retention_s = retention_s
        self._poller = Periodic("event-log-retention", self.run_once, interval_s, immediately=True)

    def run_once(self) -> int:
        """Delete what is past retention now; returns how many records."""
        try:
            deleted = self._event_log.apply_retention(self._retention_s)
        except MlrecError as exc:  # the log busy or unreadable: try again next time
            log.warning("event log retention failed: %s", exc)
            return 0
        if deleted:
            log.info("event log retention deleted %d records", deleted)
        return deleted

    def start(self) -> None:
        """Run in a daemon thread until :meth:`stop` (embedded log only)."""
        if not self._event_log.is_kafka:
            self._poller.start()

    def stop(self) -> None:
        """Stop the thread after its current pass."""
        self._poller.stop()
