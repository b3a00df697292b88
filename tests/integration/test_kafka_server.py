"""The test Kafka broker is real: idempotent produce, group consume, committed offsets."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.integration

PARTITIONS = 2
TIMEOUT_S = 30.0


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new_topic = NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)
    admin.create_topics([new_topic])[topic].result(timeout=TIMEOUT_S)


def _delete_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(timeout=TIMEOUT_S)


def _produce(bootstrap: str, topic: str, values: list[str]) -> None:
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i, value in enumerate(values):
        producer.produce(topic, key=f"user-{i}", value=value, on_delivery=on_delivery)
    assert producer.flush(TIMEOUT_S) == 0, "messages still queued after flush"
    assert errors == []


def _consumer(bootstrap: str, group: str) -> Consumer:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    return Consumer(config)


def _poll(consumer: Consumer, count: int, timeout_s: float) -> list[str]:
    """Poll until ``count`` messages arrived or ``timeout_s`` passed."""
    values: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            raise KafkaException(msg.error())
        value = msg.value()
        assert value is not None
        values.append(value.decode())
    return values


def _committed_total(consumer: Consumer, topic: str) -> int:
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    committed = consumer.committed(partitions, timeout=TIMEOUT_S)
    return sum(max(tp.offset, 0) for tp in committed)  # no commit yet: OFFSET_INVALID (-1001)


def test_group_resumes_after_committed_offsets(kafka_bootstrap: str, unique_name: str) -> None:
    topic = f"mlrec.{unique_name}.events"
    group = f"{unique_name}-group"
    _create_topic(kafka_bootstrap, topic)
    try:
        sent = [f"event-{i}" for i in range(10)]
        _produce(kafka_bootstrap, topic, sent)

        first = _consumer(kafka_bootstrap, group)
        first.subscribe([topic])
        try:
            received = _poll(first, len(sent), TIMEOUT_S)
            assert sorted(received) == sorted(sent)
            first.commit(asynchronous=False)
            assert _committed_total(first, topic) == len(sent)
        finally:
            first.close()  # leaves the group, so the next member gets every partition

        _produce(kafka_bootstrap, topic, ["after-commit"])

        second = _consumer(kafka_bootstrap, group)
        second.subscribe([topic])
        try:
            assert _committed_total(second, topic) == len(sent)
            # Only the message produced after the commit: nothing already consumed comes back.
            assert _poll(second, 1, TIMEOUT_S) == ["after-commit"]
            assert _poll(second, 1, 2.0) == []
        finally:
            second.close()
    finally:
        _delete_topic(kafka_bootstrap, topic)
