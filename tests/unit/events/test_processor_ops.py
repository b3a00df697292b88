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
from mlrec.events import (
    DLQ_TOPIC,
    INTERACTIONS_TOPIC,
    EventProducer,
    InteractionEvent,
    LogRecord,
    encode_event,
    event_key,
)
from mlrec.events.processor import StreamProcessor
from mlrec.features.realtime import RealtimeFeatures
from mlrec.services.stream import realtime_sink
from tests.polling import wait_for
from tests.unit.events.consumers import DelegatingConsumer

RECOVERED = "stream processor recovered"


def clicks(n: int, users: int = 1) -> list[InteractionEvent]:
    """``n`` events with ids ``e0..``, on items ``i0..``, spread over users ``u0..``."""
    return [
        InteractionEvent(user_id=f"u{i % users}", item_id=f"i{i}", event_id=f"e{i}", timestamp=1e9)
        for i in range(n)
    ]


def log_holding(
    tmp_path: Path, events: Sequence[InteractionEvent], partitions: int = 1
) -> tuple[SqliteEventLog, EventProducer]:
    """An embedded log whose interactions topic holds ``events``, and its producer."""
    log = SqliteEventLog(tmp_path / "events.db", partitions=partitions)
    log.ensure_topics({INTERACTIONS_TOPIC: partitions, DLQ_TOPIC: 1})
    producer = log.producer()
    producer.produce(INTERACTIONS_TOPIC, [(event_key(e), encode_event(e)) for e in events])
    return log, producer


class Outage:
    """A sink that fails ``failures`` times, then applies; by default as an unreachable
    store does, or with ``error`` (a type and its message)."""

    def __init__(
        self,
        failures: int,
        error: tuple[type[Exception], str] = (
            BackendUnavailableError,
            "Redis is unavailable: connection refused",
        ),
    ) -> None:
        self.failures = failures
        self.error = error
        self.features = RealtimeFeatures(InMemoryOnlineStore())

    def __call__(self, events: Sequence[InteractionEvent]) -> int:
        if self.failures:
            self.failures -= 1
            kind, message = self.error
            raise kind(message)
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

    def run_until_recovered(self, processor: StreamProcessor) -> None:
        """Run ``processor`` in a thread until it logs its recovery (30 s at most),
        then stop it."""
        self.processor = processor
        thread = threading.Thread(target=processor.run, kwargs={"retry_delay": 0.01})
        thread.start()
        try:
            self.recovered.wait(timeout=30)
        finally:
            processor.stop()
            thread.join(timeout=30)


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
    log, producer = log_holding(tmp_path, clicks(30, users=3), partitions=2)
    sink = Outage(failures=2)
    processor = StreamProcessor(
        log.consumer("g", [INTERACTIONS_TOPIC]), sink, producer, max_batch=10, pipeline=pipeline
    )
    handler.run_until_recovered(processor)
    producer.close()

    recoveries = [m for m in handler.messages if RECOVERED in m]
    assert len(recoveries) == 1
    assert "after 2 failed attempts" in recoveries[0]
    failed_before = [m for m in handler.messages[: handler.messages.index(recoveries[0])]]
    assert sum("batch failed" in m for m in failed_before) == 2


def test_a_processor_that_fails_nothing_logs_no_recovery(
    tmp_path: Path, handler: StopOnRecovery
) -> None:
    event = InteractionEvent(user_id="u", item_id="i", event_id="e", timestamp=time.time())
    log, producer = log_holding(tmp_path, [event])
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


class FailingOnce:
    """A dead-letter producer whose first call fails as an unreachable log does."""

    def __init__(self, inner: EventProducer) -> None:
        self.inner = inner
        self.failures = 1

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        if self.failures:
            self.failures -= 1
            raise BackendUnavailableError("the dead-letter topic is unavailable")
        self.inner.produce(topic, records)

    def close(self) -> None:
        self.inner.close()


def test_a_batch_applied_while_the_next_one_fails_counts_as_applied(tmp_path: Path) -> None:
    # Regression (metrics audit): the pipelined processor dropped the in-flight batch
    # when the next one failed (here, its dead letter), without counting what that
    # batch had applied; redelivered, its events counted as duplicates only, so
    # "applied" read 0 for 5 events that were in the store.
    log, producer = log_holding(tmp_path, clicks(5))
    producer.produce(INTERACTIONS_TOPIC, [(b"u0", b"{broken")])
    sink = Outage(failures=0)
    processor = StreamProcessor(
        log.consumer("g", [INTERACTIONS_TOPIC]),
        sink,
        FailingOnce(producer),
        max_batch=5,
        pipeline=True,
    )
    thread = threading.Thread(target=processor.run, kwargs={"retry_delay": 0.01})
    thread.start()
    try:
        wait_for(lambda: processor.stats.dead_letters == 1, 30, "the dead letter")
    finally:
        processor.stop()
        thread.join(timeout=30)
        producer.close()

    assert len(sink.features.recent_items("u0")) == 5
    assert processor.stats.applied == 5
    assert processor.stats.duplicates == 5  # the redelivered batch


def test_batch_duration_counts_the_batchs_own_work_not_the_wait_for_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (metrics audit): the pipelined clock ran from before the wait for the
    # previous batch to after the next poll, so a quiet stream reported at least the
    # poll timeout per batch. Here each poll takes 10 s of a fake clock; the batches'
    # own work takes none of it. (One clock per thread: the apply runs on the
    # processor's worker thread, and a poll overlapping it is not its work.)
    import mlrec.events.processor as processor_module

    clocks: dict[int, float] = {}
    monkeypatch.setattr(
        processor_module.time, "perf_counter", lambda: clocks.get(threading.get_ident(), 0.0)
    )

    class SlowPolls(DelegatingConsumer):
        def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
            me = threading.get_ident()
            clocks[me] = clocks.get(me, 0.0) + 10.0
            return self.inner.poll(max_records, timeout_seconds)

    log, producer = log_holding(tmp_path, clicks(6))
    observed: list[float] = []
    monkeypatch.setattr(processor_module.BATCH_SECONDS, "observe", observed.append)
    processor = StreamProcessor(
        SlowPolls(log.consumer("g", [INTERACTIONS_TOPIC])),
        Outage(failures=0),
        producer,
        max_batch=2,
        pipeline=True,
    )
    while processor.run_once():
        pass
    processor.finish()
    producer.close()

    assert len(observed) == 3 and max(observed) < 10.0


def test_a_lasting_refusal_logs_its_traceback_once_then_one_line_per_attempt(
    tmp_path: Path, handler: StopOnRecovery, caplog: pytest.LogCaptureFixture
) -> None:
    # retried every second, a refusal that lasts logged a whole traceback each time
    refusal = (PermissionError, "topic authorization failed")
    log, producer = log_holding(tmp_path, clicks(1))
    consumer = log.consumer("g", [INTERACTIONS_TOPIC])
    processor = StreamProcessor(consumer, Outage(3, refusal), producer)
    with caplog.at_level(logging.INFO, logger="mlrec.events.processor"):
        handler.run_until_recovered(processor)
    producer.close()

    failed = [r for r in caplog.records if "batch failed" in r.getMessage()]
    assert len(failed) == 3
    assert [r.exc_info is not None for r in failed] == [True, False, False]
    assert "topic authorization failed" in failed[-1].getMessage()
