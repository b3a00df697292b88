"""The API creates its topics without letting an unreachable log block start-up."""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from pathlib import Path

from mlrec.backends.factory import EventLog, open_event_log
from mlrec.core.errors import BackendUnavailableError
from mlrec.services.api.topics import TopicSetup


class FlakyLog(EventLog):
    """The embedded log, unreachable for its first ``failures`` attempts."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(None, path, 2)
        self.failures = failures
        self.attempts = 0

    def ensure_topics(
        self, topics: Mapping[str, int] | None = None, timeout_s: float = 30.0
    ) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise BackendUnavailableError("broker unreachable")
        super().ensure_topics(topics, timeout_s)


def test_topics_are_created_at_once_when_the_log_is_reachable(tmp_path: Path) -> None:
    setup = TopicSetup(open_event_log(None, tmp_path / "events.db"))
    setup.start()
    assert setup.done and setup.error is None


def test_an_unreachable_log_is_retried_in_the_background_until_it_answers(
    tmp_path: Path,
) -> None:
    log = FlakyLog(tmp_path / "events.db", failures=2)
    setup = TopicSetup(log, max_delay_s=0.01)
    setup.start()  # returns after the first failure
    assert not setup.done and setup.error is not None and "unreachable" in setup.error

    deadline = time.monotonic() + 10
    while not setup.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert setup.done and log.attempts == 3


def test_start_gives_up_quickly_on_an_unreachable_kafka(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    setup = TopicSetup(open_event_log(f"127.0.0.1:{port}", tmp_path / "x.db"), timeout_s=0.5)
    setup.start()
    setup.stop()
    assert not setup.done and setup.error is not None and "Kafka" in setup.error
