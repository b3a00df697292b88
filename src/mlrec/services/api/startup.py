"""Start-up steps that a dependency outage must not block: tried once, then retried
in the background.

A liveness probe restarts a pod that does not answer ``/health`` in time, and a
uvicorn worker that fails to start stops the whole server, so the API tries each
step once, briefly, and otherwise keeps trying in a background thread; ``/ready``
reports what is missing meanwhile. Two such steps: creating the event topics (the
durable spool takes the events meanwhile) and bringing the metadata database's
schema up to date (the API serves popular items, degraded, meanwhile).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from mlrec.backends.factory import EventLog, upgrade_metadata
from mlrec.core.errors import BackendUnavailableError, MlrecError

__all__ = ["BackgroundSetup", "schema_setup", "topic_setup"]

log = logging.getLogger(__name__)


class BackgroundSetup:
    """Runs ``action`` now and, if it fails with ``retried``, again with backoff in a
    daemon thread until it succeeds (or :meth:`stop`).

    Args:
        what: what the action sets up, for logs and ``error`` ("the topics").
        action: the step; idempotent.
        retried: the errors worth retrying (an outage); any other error is raised by
            :meth:`start`, or logged once by the background thread, which then stops.
        max_delay_s: longest wait between two attempts.
    """

    def __init__(
        self,
        what: str,
        action: Callable[[], object],
        retried: type[Exception] = MlrecError,
        max_delay_s: float = 30.0,
    ) -> None:
        self.what = what
        self._action = action
        self._retried = retried
        self._max_delay_s = max_delay_s
        self._stop = threading.Event()
        self.done = False
        self.error: str | None = None

    def start(self) -> None:
        """Try now; on a retried failure keep trying in a daemon thread."""
        if self._attempt():
            return
        log.warning("could not set up %s (%s); retrying in the background", self.what, self.error)
        name = f"set-up {self.what}"
        threading.Thread(target=self._retry, name=name, daemon=True).start()

    def stop(self) -> None:
        """Stop retrying."""
        self._stop.set()

    def _attempt(self) -> bool:
        try:
            self._action()
        except self._retried as exc:
            self.error = str(exc)
            return False
        self.done, self.error = True, None
        return True

    def _retry(self) -> None:
        delay = min(1.0, self._max_delay_s)
        while not self._stop.wait(delay):
            try:
                if self._attempt():
                    log.info("set up %s", self.what)
                    return
            except Exception:
                log.exception("setting up %s failed for good", self.what)
                return
            log.debug("setting up %s failed again: %s", self.what, self.error)
            delay = min(2 * delay, self._max_delay_s)


def topic_setup(
    event_log: EventLog, timeout_s: float = 3.0, max_delay_s: float = 30.0
) -> BackgroundSetup:
    """Creating the event log's topics (``timeout_s`` bounds each attempt's round trips)."""
    return BackgroundSetup(
        "the topics", lambda: event_log.ensure_topics(timeout_s=timeout_s), MlrecError, max_delay_s
    )


def schema_setup(database_url: str, max_delay_s: float = 30.0) -> BackgroundSetup:
    """Bringing the metadata database's schema up to date; retried only while the
    database cannot be reached (a schema it cannot migrate is an error at once)."""
    return BackgroundSetup(
        "the metadata schema",
        lambda: upgrade_metadata(database_url),
        BackendUnavailableError,
        max_delay_s,
    )
