"""The stream processor on the embedded log: apply, dedup, dead-letter, commit after apply."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.backends.sqlite_log import SqliteEventLog
from mlrec.core.errors import BackendUnavailableError
from mlrec.events import (
    DLQ_TOPIC,
    INTERACTIONS_TOPIC,
    EventConsumer,
    EventType,
    InteractionEvent,
    LogRecord,
    encode_event,
    event_key,
)
from mlrec.events.processor import LAG, CachedLag, StagedSink, StreamProcessor
from mlrec.features.realtime import RealtimeFeatures
from mlrec.services.stream import realtime_sink
from tests.contracts.event_log import poll_until
from tests.unit.events.consumers import DelegatingConsumer

GROUP = "mlrec.stream"


class Harness:
    def __init__(self, path: Path, pipeline: bool = False) -> None:
        self.pipeline = pipeline
        self.log = SqliteEventLog(path, partitions=3)
        self.log.ensure_topics({INTERACTIONS_TOPIC: 3, DLQ_TOPIC: 1})
        self.producer = self.log.producer()
        self.features = RealtimeFeatures(InMemoryOnlineStore())
        self.fail_sink = 0
        self.failure: Exception = RuntimeError("online store is down")
        self.applied_batches = 0

    def sink(self, events: Sequence[InteractionEvent]) -> int:
        if self.fail_sink:
            self.fail_sink -= 1
            raise self.failure
        self.applied_batches += 1
        return realtime_sink(self.features)(events)

    def processor(
        self, consumer: EventConsumer | None = None, lag_interval: float = 1.0
    ) -> StreamProcessor:
        return StreamProcessor(
            consumer or self.log.consumer(GROUP, [INTERACTIONS_TOPIC]),
            self.sink,
            self.producer,
            max_batch=100,
            poll_timeout=0.01,
            pipeline=self.pipeline,
            lag_interval=lag_interval,
        )

    def send(self, *events: InteractionEvent) -> None:
        self.producer.produce(INTERACTIONS_TOPIC, [(event_key(e), encode_event(e)) for e in events])

    def drain(self, processor: StreamProcessor) -> None:
        while processor.run_once():
            pass

    @staticmethod
    def step(processor: StreamProcessor) -> None:
        """Poll one batch and apply it (pipelined: also wait for it and commit)."""
        processor.run_once()
        processor.finish()


def event(user: str, item: str, event_id: str | None = None, **kw: object) -> InteractionEvent:
    fields: dict[str, object] = {"user_id": user, "item_id": item, "timestamp": time.time(), **kw}
    if event_id:
        fields["event_id"] = event_id
    return InteractionEvent.model_validate(fields)


@pytest.fixture(params=[False, True], ids=["sequential", "pipelined"])
def h(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    harness = Harness(tmp_path / "events.db", pipeline=request.param)
    yield harness
    harness.producer.close()


def test_events_are_applied_and_committed_when_processed(h: Harness) -> None:
    h.send(event("u1", "a"), event("u1", "b", type=EventType.PURCHASE), event("u2", "a"))
    processor = h.processor()

    h.drain(processor)

    assert [item for item, _ in h.features.recent_items("u1")] == ["b", "a"]
    assert [item for item, _ in h.features.popular_items(2)] == ["b", "a"]  # purchase: 5
    assert processor.stats.applied == 3
    assert processor.stats.records == 3
    assert h.log.consumer(GROUP, [INTERACTIONS_TOPIC]).poll(10, 0.05) == []


def test_duplicate_event_ids_are_applied_once_when_sent_twice(h: Harness) -> None:
    first = event("u1", "a", event_id="e1")
    h.send(first, event("u1", "b", event_id="e2"))
    h.send(first)  # a client retry
    processor = h.processor()

    h.drain(processor)

    assert processor.stats.applied == 2
    assert processor.stats.duplicates == 1
    assert h.features.activity("u1")["1h"] == 2


def test_unparseable_records_go_to_the_dlq_with_the_error_when_processed(h: Harness) -> None:
    h.producer.produce(INTERACTIONS_TOPIC, [(b"u1", b"not json"), (b"u1", b'{"user_id": "u1"}')])
    h.send(event("u1", "a"))
    processor = h.processor()

    h.drain(processor)

    dead = poll_until(h.log.consumer("dlq-reader", [DLQ_TOPIC]), 2, 1.0)
    assert len(dead) == 2
    letters = [json.loads(r.value) for r in dead]
    assert all("invalid event" in letter["error"] for letter in letters)
    assert "item_id" in letters[1]["error"]
    assert [base64.b64decode(letter["payload_b64"]) for letter in letters] == [
        b"not json",
        b'{"user_id": "u1"}',
    ]
    assert {letter["topic"] for letter in letters} == {INTERACTIONS_TOPIC}
    assert processor.stats.dead_letters == 2
    assert processor.stats.applied == 1
    assert h.log.consumer(GROUP, [INTERACTIONS_TOPIC]).poll(10, 0.05) == []


def test_nothing_is_committed_when_the_sink_fails(h: Harness) -> None:
    h.send(event("u1", "a", event_id="e1"), event("u2", "b", event_id="e2"))
    h.fail_sink = 1
    consumer = h.log.consumer(GROUP, [INTERACTIONS_TOPIC])

    with pytest.raises(RuntimeError, match="down"):
        h.step(h.processor(consumer))
    consumer.close()

    again = h.log.consumer(GROUP, [INTERACTIONS_TOPIC])
    assert len(poll_until(again, 2, 1.0)) == 2


def test_failed_batch_is_redelivered_after_rewind_when_the_sink_recovers(h: Harness) -> None:
    h.send(*(event(f"u{i % 3}", f"i{i}", event_id=f"e{i}") for i in range(10)))
    h.fail_sink = 1
    processor = h.processor()
    with pytest.raises(RuntimeError):
        h.step(processor)

    processor.consumer.rewind()
    h.drain(processor)

    assert processor.stats.applied == 10
    assert sum(len(h.features.recent_items(f"u{u}")) for u in range(3)) == 10


def test_redelivered_events_are_not_applied_twice_when_commit_was_lost(h: Harness) -> None:
    class LosesFirstCommit(DelegatingConsumer):
        failed = False

        def commit(self, through: Sequence[LogRecord] | None = None) -> None:
            if not self.failed:
                self.failed = True
                raise ConnectionError("commit lost")
            self.inner.commit(through)

    h.send(*(event("u1", f"i{i}", event_id=f"e{i}") for i in range(5)))
    processor = h.processor(LosesFirstCommit(h.log.consumer(GROUP, [INTERACTIONS_TOPIC])))
    with pytest.raises(ConnectionError):
        h.step(processor)
    processor.consumer.rewind()

    h.drain(processor)

    # The first pass applied all five (counted before its commit failed); the
    # redelivery is all duplicates, and each event counted once.
    assert processor.stats.applied == 5
    assert processor.stats.duplicates == 5
    assert h.features.activity("u1")["1h"] == 5


def test_run_retries_until_everything_is_applied_when_the_sink_fails_twice(h: Harness) -> None:
    h.send(*(event(f"u{i % 4}", f"i{i}", event_id=f"e{i}") for i in range(250)))
    h.fail_sink = 2
    processor = h.processor()
    thread = threading.Thread(target=processor.run, kwargs={"retry_delay": 0.01})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while processor.stats.applied < 250 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        processor.stop()
        thread.join(timeout=5)

    assert processor.stats.applied == 250
    assert processor.stats.duplicates == 0
    assert processor.consumer.lag() == 0


@pytest.mark.parametrize(
    ("failure", "level", "traceback"),
    [
        (BackendUnavailableError("Redis is unavailable"), logging.WARNING, False),
        (RuntimeError("a bug"), logging.ERROR, True),
    ],
    ids=["outage", "defect"],
)
def test_an_outage_is_logged_in_one_line_and_a_defect_with_its_traceback(
    h: Harness,
    caplog: pytest.LogCaptureFixture,
    failure: Exception,
    level: int,
    traceback: bool,
) -> None:
    h.send(event("u1", "i1", event_id="e1"))
    h.fail_sink, h.failure = 1, failure
    processor = h.processor()
    thread = threading.Thread(target=processor.run, kwargs={"retry_delay": 0.01})
    with caplog.at_level(logging.WARNING, logger="mlrec.events.processor"):
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while processor.stats.applied < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            processor.stop()
            thread.join(timeout=5)

    (record,) = [r for r in caplog.records if "batch failed" in r.getMessage()]
    assert record.levelno == level and (record.exc_info is not None) is traceback
    assert str(failure) in record.getMessage() or traceback
    assert processor.stats.applied == 1


def test_pipelined_commit_covers_only_the_applied_batch_when_the_next_is_polled(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path / "events.db", pipeline=True)
    h.send(*(event("u1", f"i{i}", event_id=f"e{i}") for i in range(150)))  # two batches
    consumer = h.log.consumer(GROUP, [INTERACTIONS_TOPIC])
    processor = h.processor(consumer)

    processor.run_once()  # batch 1 handed to the worker
    processor.run_once()  # batch 1 applied and committed; batch 2 in flight
    assert processor.stats.applied == 100
    consumer.close()  # batch 2 never committed
    h.producer.close()

    again = h.log.consumer(GROUP, [INTERACTIONS_TOPIC])
    assert len(poll_until(again, 50, 1.0)) == 50


def test_staged_sink_is_prepared_on_the_polling_thread_and_applied_in_the_worker(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path / "events.db", pipeline=True)
    sink = realtime_sink(h.features)
    assert isinstance(sink, StagedSink)
    prepared_on: set[str] = set()
    applied_on: set[str] = set()

    class Recording:
        def prepare(self, events: Sequence[InteractionEvent]) -> object:
            prepared_on.add(threading.current_thread().name)
            return sink.prepare(events)

        def apply(self, prepared: object) -> int:
            applied_on.add(threading.current_thread().name)
            return sink.apply(prepared)

        def __call__(self, events: Sequence[InteractionEvent]) -> int:
            raise AssertionError("a staged sink is prepared and applied, not called")

    h.send(*(event(f"u{i % 200 % 3}", f"i{i}", event_id=f"e{i % 200}") for i in range(250)))
    processor = StreamProcessor(
        h.log.consumer(GROUP, [INTERACTIONS_TOPIC]),
        Recording(),
        h.producer,
        max_batch=100,
        pipeline=True,
    )
    h.drain(processor)

    assert processor.stats.applied == 200 and processor.stats.duplicates == 50
    assert prepared_on == {threading.current_thread().name}
    assert applied_on and all(name.startswith("stream-apply") for name in applied_on)
    h.producer.close()


class FlakyRewind(DelegatingConsumer):
    """A consumer whose rewind fails ``rewind_failures`` times (the coordinator is
    unreachable) and, optionally, whose ``fail_commit``-th commit is lost; it records
    what the processor asked of it, in order."""

    def __init__(self, inner: EventConsumer, rewind_failures: int, fail_commit: int = 0) -> None:
        super().__init__(inner)
        self.rewind_failures = rewind_failures
        self.fail_commit = fail_commit
        self.commits = 0
        self.calls: list[str] = []

    def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
        records = self.inner.poll(max_records, timeout_seconds)
        if records:
            self.calls.append("poll")
        return records

    def commit(self, through: Sequence[LogRecord] | None = None) -> None:
        self.commits += 1
        if self.commits == self.fail_commit:
            self.calls.append("commit failed")
            raise ConnectionError("commit lost: coordinator unreachable")
        self.inner.commit(through)

    def rewind(self) -> None:
        if self.rewind_failures:
            self.rewind_failures -= 1
            self.calls.append("rewind failed")
            raise ConnectionError("committed offsets timed out")
        self.calls.append("rewind")
        self.inner.rewind()


@pytest.mark.parametrize("failure", ["sink", "commit"])
def test_run_polls_nothing_until_a_rewind_succeeded_when_the_rewind_fails(
    h: Harness, failure: str
) -> None:
    h.send(*(event(f"u{i % 7}", f"i{i}", event_id=f"e{i}") for i in range(450)))
    if failure == "sink":
        h.fail_sink = 1
    consumer = FlakyRewind(
        h.log.consumer(GROUP, [INTERACTIONS_TOPIC]),
        rewind_failures=3,
        fail_commit=2 if failure == "commit" else 0,
    )
    processor = h.processor(consumer)
    thread = threading.Thread(target=processor.run, kwargs={"retry_delay": 0.01})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while consumer.inner.lag() > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        processor.stop()
        thread.join(timeout=5)

    # every event applied once (none skipped behind the failed batch), all committed
    assert processor.stats.applied == 450
    assert sum(h.features.activity(f"u{u}")["1h"] for u in range(7)) == 450
    assert h.log.consumer(GROUP, [INTERACTIONS_TOPIC]).poll(10, 0.05) == []
    # after the failure: the rewind is retried, and only then is anything polled
    failed_rewinds = [i for i, call in enumerate(consumer.calls) if call == "rewind failed"]
    assert len(failed_rewinds) == 3
    after = consumer.calls[failed_rewinds[0] :]
    assert after[:4] == ["rewind failed"] * 3 + ["rewind"], consumer.calls


def test_a_huge_unparseable_record_is_dead_lettered_with_its_payload_cut(h: Harness) -> None:
    from mlrec.events.processor import DEAD_LETTER_PAYLOAD_BYTES

    huge = b"x" * (3 * DEAD_LETTER_PAYLOAD_BYTES)
    h.producer.produce(INTERACTIONS_TOPIC, [(b"u1", huge)])
    processor = h.processor()

    h.drain(processor)

    (dead,) = poll_until(h.log.consumer("dlq-reader", [DLQ_TOPIC]), 1, 1.0)
    letter = json.loads(dead.value)
    assert letter["payload_truncated"] and letter["payload_bytes"] == len(huge)
    assert base64.b64decode(letter["payload_b64"]) == huge[:DEAD_LETTER_PAYLOAD_BYTES]
    assert len(dead.value) < 1_000_000  # below Kafka's default record limit


# -- the lag gauge -------------------------------------------------------------------


def lag_gauge() -> float | None:
    return REGISTRY.get_sample_value("mlrec_stream_consumer_lag_records")


def test_lag_gauge_follows_the_backlog_down_to_zero_on_the_embedded_log(h: Harness) -> None:
    h.send(*(event(f"u{i % 5}", f"i{i}", event_id=f"e{i}") for i in range(250)))
    processor = h.processor(lag_interval=0)  # measured after every poll
    LAG.set(-1)  # whatever an earlier test left

    polled = processor.run_once()

    assert 0 < polled < 250
    assert lag_gauge() == 250 - polled
    h.drain(processor)  # ends on a poll that found nothing
    assert lag_gauge() == 0
    assert processor.stats.applied == 250


class LagCalls(DelegatingConsumer):
    """Records which thread asked for the lag, and when."""

    def __init__(self, inner: EventConsumer) -> None:
        super().__init__(inner)
        self.calls: list[tuple[str, float]] = []

    def lag(self) -> int:
        self.calls.append((threading.current_thread().name, time.monotonic()))
        return self.inner.lag()


def test_lag_is_measured_in_the_polling_thread_at_most_every_lag_interval(
    tmp_path: Path,
) -> None:
    """Regression (audit defect 2): a side thread asking the consumer starved while
    the loop polled (Kafka's consumer serialises its calls), freezing the gauge."""
    h = Harness(tmp_path / "events.db", pipeline=True)
    consumer = LagCalls(h.log.consumer(GROUP, [INTERACTIONS_TOPIC]))
    processor = h.processor(consumer, lag_interval=0.1)
    h.send(*(event(f"u{i % 5}", f"i{i}", event_id=f"e{i}") for i in range(250)))
    LAG.set(-1)
    thread = threading.Thread(target=processor.run, name="poller")
    thread.start()
    deadline = time.monotonic() + 10  # a loaded machine may take longer than usual
    try:
        while time.monotonic() < deadline and not (
            processor.stats.applied == 250 and lag_gauge() == 0 and len(consumer.calls) >= 3
        ):
            time.sleep(0.05)
    finally:
        processor.stop()
        thread.join(timeout=5)
        h.producer.close()

    assert processor.stats.applied == 250
    assert lag_gauge() == 0
    assert {name for name, _ in consumer.calls} == {"poller"}
    assert len(consumer.calls) >= 3  # kept measuring while idle-polling
    times = [at for _, at in consumer.calls]
    assert min(b - a for a, b in pairwise(times)) >= 0.1


def test_a_cached_lag_consumer_sets_the_gauge_without_a_lag_round_trip(tmp_path: Path) -> None:
    class Cached(DelegatingConsumer):
        def __init__(self, inner: EventConsumer, answers: list[int | None]) -> None:
            super().__init__(inner)
            self.answers = answers

        def cached_lag(self) -> int | None:
            return self.answers.pop(0)

        def lag(self) -> int:
            raise AssertionError("the polling loop asked for a lag round trip")

    h = Harness(tmp_path / "events.db")
    consumer = Cached(h.log.consumer(GROUP, [INTERACTIONS_TOPIC]), [None, 7, None, 0])
    assert isinstance(consumer, CachedLag)
    processor = h.processor(consumer, lag_interval=0)
    LAG.set(-1)

    seen = []
    for _ in range(4):
        processor.run_once()
        seen.append(lag_gauge())

    assert seen == [-1, 7, 7, 0]  # an unknown lag leaves the gauge as it was


def test_a_failing_lag_check_does_not_stop_processing(h: Harness) -> None:
    class NoLag(DelegatingConsumer):
        def lag(self) -> int:
            raise ConnectionError("log unreachable")

    h.send(*(event(f"u{i % 5}", f"i{i}", event_id=f"e{i}") for i in range(250)))
    processor = h.processor(NoLag(h.log.consumer(GROUP, [INTERACTIONS_TOPIC])), lag_interval=0)
    LAG.set(-1)

    h.drain(processor)

    assert processor.stats.applied == 250
    assert lag_gauge() == -1
