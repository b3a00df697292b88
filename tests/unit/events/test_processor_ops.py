"""What an operator sees of the stream processor: a recovery line after an outage, and
every ``mlrec_stream_events_total`` series from the start (before any event)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.backends.sqlite_log import SqliteEventLog
from mlrec.core.errors import BackendUnavailableError
from mlrec.events import DLQ_TOPIC, INTERACTIONS_TOPIC, InteractionEvent, encode_event, event_key
from mlrec.events.processor import StreamProcessor
from mlrec.features.realtime import RealtimeFeatures
from mlrec.services.stream import realtime_sink

RECOVERED = "stream processor recovered"


class Outage:
    """A sink that fails (as an unreachable store does) ``failures`` times, then applies."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.features = RealtimeFeatures(InMemoryOnlineStore())

    def __call__(self, events: Sequence[InteractionEvent]) -> int:
        if self.failures:
            self.failures -= 1
            raise BackendUnavailableError("Redis is unavailable: connection refused")
        return realtime_sink(self.features)(events)


class StopOnRecovery(logging.Handler):
    """Stops the processor once it logged its recovery (and remembers the lines)."""

    def __init__(self) -> None:
        super().__init__()
        self.processor: StreamProcessor | None = None
        self.messages: list[str] = []
        self.recovered = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if RECOVERED in record.getMessage() and self.processor is not None:
            self.recovered.set()
            self.processor.stop()


@pytest.fixture
def handler() -> Iterator[StopOnRecovery]:
    watcher = StopOnRecovery()
    logger = logging.getLogger("mlrec.events.processor")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(watcher)
    yield watcher
    logger.removeHandler(watcher)
    logger.setLevel(level)


@pytest.mark.parametrize("pipeline", [False, True], ids=["sequential", "pipelined"])
def test_one_line_says_the_processor_recovered_once_a_batch_is_committed_again(
    tmp_path: Path, handler: StopOnRecovery, pipeline: bool
) -> None:
    # Regression (ops audit): each failed attempt logged a warning, and nothing said
    # when the store was back: an operator could not tell a recovered processor from
    # one that had gone quiet.
    log = SqliteEventLog(tmp_path / "events.db", partitions=2)
    log.ensure_topics({INTERACTIONS_TOPIC: 2, DLQ_TOPIC: 1})
    producer = log.producer()
    events = [
        InteractionEvent(user_id=f"u{i % 3}", item_id=f"i{i}", event_id=f"e{i}", timestamp=1e9)
        for i in range(30)
    ]
    producer.produce(INTERACTIONS_TOPIC, [(event_key(e), encode_event(e)) for e in events])
    sink = Outage(failures=2)
    processor = StreamProcessor(
        log.consumer("g", [INTERACTIONS_TOPIC]), sink, producer, max_batch=10, pipeline=pipeline
    )
    handler.processor = processor
    thread = threading.Thread(target=processor.run, kwargs={"retry_delay": 0.01})
    thread.start()
    try:
        handler.recovered.wait(timeout=30)
    finally:
        processor.stop()
        thread.join(timeout=30)
        producer.close()

    recoveries = [m for m in handler.messages if RECOVERED in m]
    assert len(recoveries) == 1
    assert "after 2 failed attempts" in recoveries[0]
    failed_before = [m for m in handler.messages[: handler.messages.index(recoveries[0])]]
    assert sum("batch failed" in m for m in failed_before) == 2


def test_a_processor_that_fails_nothing_logs_no_recovery(
    tmp_path: Path, handler: StopOnRecovery
) -> None:
    log = SqliteEventLog(tmp_path / "events.db", partitions=1)
    log.ensure_topics({INTERACTIONS_TOPIC: 1, DLQ_TOPIC: 1})
    producer = log.producer()
    event = InteractionEvent(user_id="u", item_id="i", event_id="e", timestamp=time.time())
    producer.produce(INTERACTIONS_TOPIC, [(event_key(event), encode_event(event))])
    processor = StreamProcessor(log.consumer("g", [INTERACTIONS_TOPIC]), Outage(0), producer)
    while processor.run_once():
        pass
    processor.stop()
    processor.run()
    producer.close()

    assert processor.stats.applied == 1
    assert not [m for m in handler.messages if RECOVERED in m]


# A process of its own: the counter is process-wide, and other tests count events.
_SERIES = """
import sys
from pathlib import Path
from prometheus_client import REGISTRY
from mlrec.backends.sqlite_log import SqliteEventLog
from mlrec.events import INTERACTIONS_TOPIC
from mlrec.events.processor import StreamProcessor
log = SqliteEventLog(Path(sys.argv[1]), partitions=1)
StreamProcessor(log.consumer("g", [INTERACTIONS_TOPIC]), lambda events: 0, log.producer())
for outcome in ("applied", "duplicate", "dead_letter"):
    print(outcome, REGISTRY.get_sample_value("mlrec_stream_events_total", {"outcome": outcome}))
"""


def test_every_events_total_series_is_exposed_at_zero_before_the_first_batch(
    tmp_path: Path,
) -> None:
    # Regression (ops audit): /metrics had no mlrec_stream_events_total at all until a
    # batch was handled, and no dead_letter series until a bad record came; a rate()
    # or an alert on it had nothing to work on.
    out = subprocess.run(
        [sys.executable, "-c", _SERIES, str(tmp_path / "events.db")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    assert out.split("\n")[:3] == ["applied 0.0", "duplicate 0.0", "dead_letter 0.0"]
