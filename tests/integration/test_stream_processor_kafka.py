"""The stream processor on the real Kafka broker and the real Redis online store."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import REGISTRY

from mlrec.backends.kafka import KafkaConsumer, KafkaProducer, ensure_topics
from mlrec.backends.redis_features import RedisOnlineStore
from mlrec.events import InteractionEvent, encode_event, event_key
from mlrec.events.log import LogRecord
from mlrec.events.processor import LAG, StreamProcessor
from mlrec.features.realtime import RealtimeFeatures
from mlrec.services.stream import realtime_sink
from tests.contracts.event_log import poll_until

pytestmark = pytest.mark.integration


@pytest.fixture
def features(redis_url: str) -> Iterator[RealtimeFeatures]:
    store = RedisOnlineStore(redis_url, key_prefix=f"t{uuid.uuid4().hex[:10]}", socket_timeout=5)
    yield RealtimeFeatures(store)
    store.flush_prefix()
    store.close()


def _fresh_topic(kafka_bootstrap: str, partitions: int) -> tuple[str, KafkaProducer]:
    """A new topic of ``partitions`` with its ``.dlq`` topic (one partition), and a
    producer to write to them."""
    topic = f"t.proc.{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, {topic: partitions, f"{topic}.dlq": 1})
    return topic, KafkaProducer(kafka_bootstrap, client_id="test")


def test_processor_applies_dedups_and_dead_letters_on_kafka_and_redis(
    kafka_bootstrap: str, features: RealtimeFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, producer = _fresh_topic(kafka_bootstrap, 3)
    dlq_topic = f"{topic}.dlq"
    now = time.time()
    events = [
        InteractionEvent(event_id=f"e{i}", user_id=f"u{i % 5}", item_id=f"i{i}", timestamp=now)
        for i in range(50)
    ]
    records = [(event_key(e), encode_event(e)) for e in events]
    producer.produce(topic, [*records, (b"u0", b"{broken"), *records[:10]])

    consumer = KafkaConsumer(kafka_bootstrap, f"{topic}.g", [topic])
    processor = StreamProcessor(consumer, realtime_sink(features), producer, max_batch=20)
    # The processor writes dead letters to the fixed DLQ topic; point it at ours.
    monkeypatch.setattr("mlrec.events.processor.DLQ_TOPIC", dlq_topic)
    try:
        deadline = time.monotonic() + 30
        while processor.stats.records < 61 and time.monotonic() < deadline:
            processor.run_once()
    finally:
        consumer.close()

    assert processor.stats.applied == 50
    assert processor.stats.duplicates == 10
    assert processor.stats.dead_letters == 1
    assert sum(len(features.recent_items(f"u{u}")) for u in range(5)) == 50

    dlq_consumer = KafkaConsumer(kafka_bootstrap, f"{topic}.dlq-reader", [dlq_topic])
    try:
        [letter] = poll_until(dlq_consumer, 1, 20)
    finally:
        dlq_consumer.close()
    body = json.loads(letter.value)
    assert "invalid event" in body["error"]
    assert base64.b64decode(body["payload_b64"]) == b"{broken"

    # Everything was committed: the group has nothing left.
    again = KafkaConsumer(kafka_bootstrap, f"{topic}.g", [topic])
    try:
        assert poll_until(again, 1, 5) == []
        assert again.lag() == 0
    finally:
        again.close()
        producer.close()


def test_a_record_with_a_key_near_the_record_limit_is_dead_lettered_on_kafka(
    kafka_bootstrap: str, features: RealtimeFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kafka takes the record (key and value under its 1 MB); a dead letter carrying the
    # whole key beside the payload would not fit, be refused every time, and hold the
    # partition (and the good event behind it) for good.
    topic, producer = _fresh_topic(kafka_bootstrap, 1)
    dlq_topic = f"{topic}.dlq"
    good = InteractionEvent(event_id="e1", user_id="u1", item_id="i1", timestamp=time.time())
    key = b"k" * 700_000
    producer.produce(topic, [(key, b"x" * 250_000), (event_key(good), encode_event(good))])

    consumer = KafkaConsumer(kafka_bootstrap, f"{topic}.g", [topic])
    processor = StreamProcessor(consumer, realtime_sink(features), producer, max_batch=20)
    monkeypatch.setattr("mlrec.events.processor.DLQ_TOPIC", dlq_topic)
    dlq_consumer = KafkaConsumer(kafka_bootstrap, f"{topic}.dlq-reader", [dlq_topic])
    try:
        deadline = time.monotonic() + 30
        while processor.stats.records < 2 and time.monotonic() < deadline:
            processor.run_once()
        [letter] = poll_until(dlq_consumer, 1, 20)
    finally:
        dlq_consumer.close()
        consumer.close()
        producer.close()

    assert letter.key and key.startswith(letter.key)
    assert json.loads(letter.value)["payload_bytes"] == 250_000
    assert processor.stats.dead_letters == 1
    assert [item for item, _ in features.recent_items("u1")] == ["i1"]


def test_failed_batch_is_redelivered_after_rewind_on_kafka(
    kafka_bootstrap: str, features: RealtimeFeatures
) -> None:
    topic, producer = _fresh_topic(kafka_bootstrap, 2)
    now = time.time()
    events = [
        InteractionEvent(event_id=f"e{i}", user_id=f"u{i % 3}", item_id=f"i{i}", timestamp=now)
        for i in range(30)
    ]
    producer.produce(topic, [(event_key(e), encode_event(e)) for e in events])
    failures = [1]
    real_sink = realtime_sink(features)

    def flaky(batch: Sequence[InteractionEvent]) -> int:
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("redis went away")
        return int(real_sink(batch))

    consumer = KafkaConsumer(kafka_bootstrap, f"{topic}.g", [topic])
    processor = StreamProcessor(consumer, flaky, producer, max_batch=100)
    try:
        deadline = time.monotonic() + 30
        while processor.stats.applied < 30 and time.monotonic() < deadline:
            try:
                processor.run_once()
            except ConnectionError:
                consumer.rewind()
    finally:
        consumer.close()
        producer.close()

    assert processor.stats.applied == 30
    assert processor.stats.duplicates == 0


class CoordinatorHiccup:
    """Proxy over librdkafka's consumer: its second commit is lost and the next
    ``committed()`` lookups time out (the group coordinator is unreachable a while)."""

    def __init__(self, real: Any, committed_failures: int) -> None:
        self.real = real
        self.commits = 0
        self.committed_failures = committed_failures
        self.failing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        self.commits += 1
        if self.commits == 2:
            self.failing = True
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "coordinator unreachable"))
        return self.real.commit(*args, **kwargs)

    def committed(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing and self.committed_failures:
            self.committed_failures -= 1
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "committed timed out"))
        return self.real.committed(*args, **kwargs)


def test_no_batch_is_skipped_on_kafka_when_the_rewind_fails_after_a_lost_commit(
    kafka_bootstrap: str,
) -> None:
    topic, producer = _fresh_topic(kafka_bootstrap, 1)
    events = [
        InteractionEvent(event_id=f"e{i}", user_id=f"u{i % 50}", item_id="i") for i in range(400)
    ]
    producer.produce(topic, [(event_key(e), encode_event(e)) for e in events])
    applied: set[str] = set()

    def sink(batch: Sequence[InteractionEvent]) -> int:
        applied.update(e.event_id for e in batch)
        return len(batch)

    consumer = KafkaConsumer(kafka_bootstrap, f"{topic}.g", [topic])
    hiccup = CoordinatorHiccup(consumer._consumer, committed_failures=2)
    consumer._consumer = hiccup  # type: ignore[assignment]
    processor = StreamProcessor(consumer, sink, producer, max_batch=100, pipeline=True)
    thread = threading.Thread(target=processor.run, kwargs={"retry_delay": 0.1})
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            len(applied) < len(events) or processor.stats.records < len(events)
        ):
            time.sleep(0.05)
        time.sleep(1.0)  # anything the processor would still commit
    finally:
        processor.stop()
        thread.join(timeout=10)
    try:
        [position] = hiccup.real.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
        producer.close()

    assert hiccup.commits >= 2  # the hiccup happened
    assert sorted(applied) == sorted(e.event_id for e in events)  # no batch skipped
    assert position.offset == len(events)
    assert hiccup.committed_failures == 0  # the rewind was retried until it worked


class PollCounting(KafkaConsumer):
    """The real consumer, counting the processor's polls."""

    polls = 0

    def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
        self.polls += 1
        return super().poll(max_records, timeout_seconds)


def lag_gauge() -> float | None:
    return REGISTRY.get_sample_value("mlrec_stream_consumer_lag_records")


def test_lag_gauge_drops_to_zero_after_a_backlog_while_the_processor_keeps_polling(
    kafka_bootstrap: str,
) -> None:
    """Regression (audit defect 2): the gauge was read by a side thread from the
    consumer the loop polls; librdkafka serialised the calls, the side thread starved
    once the loop idle-polled, and the gauge kept its backlog value for good."""
    topic, producer = _fresh_topic(kafka_bootstrap, 2)
    total = 4000
    events = [
        InteractionEvent(event_id=f"e{i}", user_id=f"u{i % 50}", item_id=f"i{i}")
        for i in range(total)
    ]
    producer.produce(topic, [(event_key(e), encode_event(e)) for e in events])
    applied: list[int] = []

    def slow_sink(batch: Sequence[InteractionEvent]) -> int:
        time.sleep(0.1)  # a backlog that takes seconds to apply
        applied.append(len(batch))
        return len(batch)

    consumer = PollCounting(kafka_bootstrap, f"{topic}.g", [topic])
    processor = StreamProcessor(consumer, slow_sink, producer, max_batch=100, pipeline=True)
    LAG.set(-1)  # whatever an earlier test left
    thread = threading.Thread(target=processor.run, kwargs={"retry_delay": 0.1})
    thread.start()
    during: list[float | None] = []
    try:
        deadline = time.monotonic() + 60
        while sum(applied) < total and time.monotonic() < deadline:
            during.append(lag_gauge())
            time.sleep(0.2)
        caught_up_at = consumer.polls
        deadline = time.monotonic() + 10
        while lag_gauge() != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        after = lag_gauge()
        time.sleep(1.5)  # a measurement or more later, still polling
        later = lag_gauge()
        polls_since = consumer.polls - caught_up_at
    finally:
        processor.stop()
        thread.join(timeout=10)
        consumer.close()
        producer.close()

    assert sum(applied) == total
    assert max(v for v in during if v is not None) > 0  # it followed the backlog...
    assert after == 0  # ...down to nothing once it was applied
    assert later == 0
    assert polls_since > 10  # while the processor kept polling
