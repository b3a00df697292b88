"""The Kafka event log keeps the event log contract on the real broker."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from mlrec.backends.factory import EventLog, open_event_log
from mlrec.backends.kafka import (
    FOLLOWER_GROUP,
    KafkaConsumer,
    KafkaFollower,
    KafkaProducer,
    ensure_topics,
)
from mlrec.core.errors import BackendUnavailableError, ValidationError
from tests.contracts.event_log import EventLogContract, poll_until
from tests.integration.serving import closed_port

pytestmark = pytest.mark.integration


class TestKafkaEventLog(EventLogContract):
    wait_s = 20.0
    quiet_s = 1.0

    @pytest.fixture
    def event_log(self, kafka_bootstrap: str, tmp_path: Path) -> EventLog:
        return open_event_log(kafka_bootstrap, tmp_path / "unused.db", partitions=3)


def test_ensure_topics_is_idempotent_and_grows_partitions(kafka_bootstrap: str) -> None:
    topic = f"t.ensure.{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, {topic: 2})
    ensure_topics(kafka_bootstrap, {topic: 2})
    ensure_topics(kafka_bootstrap, {topic: 4})

    producer = KafkaProducer(kafka_bootstrap, client_id="test")
    producer.produce(topic, [(f"k{i}".encode(), b"x") for i in range(100)])
    consumer = KafkaConsumer(kafka_bootstrap, f"{topic}.g", [topic])
    try:
        assert {r.partition for r in poll_until(consumer, 100, 20.0)} == {0, 1, 2, 3}
    finally:
        consumer.close()
        producer.close()


def test_every_partition_serves_offsets_as_soon_as_ensure_topics_returns(
    kafka_bootstrap: str,
) -> None:
    topic = f"t.ready.{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, {topic: 2})
    ensure_topics(kafka_bootstrap, {topic: 24})

    reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": uuid.uuid4().hex})
    try:
        ends = [
            reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(24)
        ]
    finally:
        reader.close()
    assert ends == [0] * 24


def test_produce_raises_unavailable_when_no_broker_answers() -> None:
    producer = KafkaProducer("127.0.0.1:1", client_id="test", delivery_timeout_s=0.5)
    with pytest.raises(BackendUnavailableError, match="did not acknowledge"):
        producer.produce("t.nowhere", [(b"k", b"v")])


def test_ensure_topics_raises_unavailable_when_no_broker_answers() -> None:
    with pytest.raises(BackendUnavailableError):
        ensure_topics("127.0.0.1:1", {"t.nowhere": 1}, timeout_s=1.0)


def test_a_record_too_large_is_refused_for_good_and_the_producer_keeps_working(
    kafka_bootstrap: str,
) -> None:
    topic = f"t.size.{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    small_topic = NewTopic(topic, num_partitions=1, config={"max.message.bytes": "2000"})
    for future in admin.create_topics([small_topic]).values():
        future.result(timeout=30)
    producer = KafkaProducer(kafka_bootstrap, client_id="test")
    try:
        # larger than the topic takes: refused by the broker
        with pytest.raises(ValidationError, match="MSG_SIZE_TOO_LARGE") as raised:
            producer.produce(topic, [(b"k", b"x" * 5000)])
        assert not isinstance(raised.value, BackendUnavailableError)
        # larger than the client sends at all (message.max.bytes, 1 MB): refused locally
        with pytest.raises(ValidationError, match="record 1 of 1"):
            producer.produce(topic, [(b"k", b"x" * 1_200_000)])
        # not an outage: the next records go through
        producer.produce(topic, [(b"k", b"after")])
    finally:
        producer.close()
    consumer = KafkaConsumer(kafka_bootstrap, f"{topic}.g", [topic])
    try:
        assert [r.value for r in poll_until(consumer, 1, 20.0)] == [b"after"]
    finally:
        consumer.close()


def test_followers_leave_no_consumer_group_on_the_broker(kafka_bootstrap: str) -> None:
    topic = f"t.follow.{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, {topic: 1})
    producer = KafkaProducer(kafka_bootstrap, client_id="test")
    followers = [KafkaFollower(kafka_bootstrap, [topic]) for _ in range(3)]
    try:
        producer.produce(topic, [(b"k", b"promoted")])
        for follower in followers:
            assert [r.value for r in poll_until(follower, 1, 20.0)] == [b"promoted"]
    finally:
        for follower in followers:
            follower.close()
        producer.close()

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    groups = admin.list_consumer_groups(request_timeout=10).result()
    assert FOLLOWER_GROUP not in {g.group_id for g in groups.valid}


def test_a_follower_reads_a_topic_created_after_it_opened_from_its_start(
    kafka_bootstrap: str,
) -> None:
    topic = f"t.follow.late.{uuid.uuid4().hex[:10]}"
    follower = KafkaFollower(kafka_bootstrap, [topic], refresh_s=0.2)
    producer = KafkaProducer(kafka_bootstrap, client_id="test")
    try:
        assert follower.poll(10, 0.2) == []
        ensure_topics(kafka_bootstrap, {topic: 2})
        producer.produce(topic, [(b"k1", b"a"), (b"k2", b"b")])

        assert sorted(r.value for r in poll_until(follower, 2, 20.0)) == [b"a", b"b"]
    finally:
        follower.close()
        producer.close()


def cached_lag_after_polls(consumer: KafkaConsumer, timeout_s: float = 20.0) -> int | None:
    """Poll (expecting nothing) until the consumer's cached lag is known."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert consumer.poll(100, 0.1) == []
        lag = consumer.cached_lag()
        if lag is not None:
            return lag
    return None


def test_cached_lag_reads_zero_when_a_caught_up_consumer_restarts_and_polls_nothing(
    kafka_bootstrap: str,
) -> None:
    topic = f"t.lag.{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, {topic: 2})
    producer = KafkaProducer(kafka_bootstrap, client_id="test")
    producer.produce(topic, [(f"k{i}".encode(), b"x") for i in range(20)])
    first = KafkaConsumer(kafka_bootstrap, f"{topic}.g", [topic], stats_interval_s=0.2)
    try:
        assert len(poll_until(first, 20, 20.0)) == 20
        first.commit()
    finally:
        first.close()
        producer.close()

    # librdkafka knows no position in a partition nothing was polled from since the
    # assignment, only the group's commit (which it fetched itself on assignment)
    restarted = KafkaConsumer(kafka_bootstrap, f"{topic}.g", [topic], stats_interval_s=0.2)
    try:
        assert cached_lag_after_polls(restarted) == 0
        assert restarted.lag() == 0  # the broker agrees
    finally:
        restarted.close()

    # a new group that starts at the end has nothing to read either
    latest = KafkaConsumer(
        kafka_bootstrap, f"{topic}.new", [topic], auto_offset_reset="latest", stats_interval_s=0.2
    )
    try:
        assert cached_lag_after_polls(latest) == 0
    finally:
        latest.close()


def test_a_producer_reports_whether_a_broker_answers(kafka_bootstrap: str) -> None:
    up = KafkaProducer(kafka_bootstrap, client_id="test")
    down = KafkaProducer(f"127.0.0.1:{closed_port()}", client_id="test")
    try:
        assert up.reachable()
        assert not down.reachable(timeout_s=0.5)
    finally:
        up.close()
        down.close()
