"""How the Kafka log reports failures, offline: librdkafka is replaced by fakes that
answer what the real client answers (per-partition errors, delivery reports)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException

from mlrec.backends.kafka import KafkaConsumer, KafkaProducer
from mlrec.core.errors import BackendError, BackendUnavailableError, ValidationError

NOWHERE = "127.0.0.1:1"  # nothing listens: the real client is never used


@dataclass
class Partition:
    """What ``Consumer.committed()`` returns per partition (a TopicPartition's fields)."""

    topic: str
    partition: int
    offset: int = -1001
    error: KafkaError | None = None


class FakeConsumer:
    def __init__(self, committed: list[Partition]) -> None:
        self._committed = committed
        self.sought: list[tuple[str, int, int]] = []

    def assignment(self) -> list[Partition]:
        return [Partition(p.topic, p.partition) for p in self._committed]

    def committed(self, partitions: list[Partition], timeout: float) -> list[Partition]:
        return self._committed

    def seek(self, tp: Partition) -> None:
        self.sought.append((tp.topic, tp.partition, tp.offset))

    def close(self) -> None:
        pass


@pytest.fixture
def consumer() -> Iterator[KafkaConsumer]:
    kafka = KafkaConsumer(NOWHERE, "g", ["t"], timeout_s=0.1)
    real = kafka._consumer
    real.close()
    yield kafka


def test_rewind_seeks_to_the_committed_offsets_or_the_start(consumer: KafkaConsumer) -> None:
    fake = FakeConsumer([Partition("t", 0, 42), Partition("t", 1)])  # 1: never committed
    consumer._consumer = fake  # type: ignore[assignment]

    consumer.rewind()

    assert fake.sought == [("t", 0, 42), ("t", 1, OFFSET_BEGINNING)]


def test_rewind_fails_rather_than_replays_a_partition_whose_offset_could_not_be_read(
    consumer: KafkaConsumer,
) -> None:
    # committed() does not raise for one partition's error: it sets the partition's
    # error and leaves its offset invalid, which would read as "never committed"
    unstable = KafkaError(KafkaError.UNSTABLE_OFFSET_COMMIT)
    fake = FakeConsumer([Partition("t", 0, 42), Partition("t", 1, error=unstable)])
    consumer._consumer = fake  # type: ignore[assignment]

    with pytest.raises(BackendUnavailableError, match=r"t\[1\]"):
        consumer.rewind()
    assert fake.sought == []  # nothing moved: the rewind is retried as a whole


class FakeProducer:
    """Takes records and answers each with ``report(index)`` (an error or None) when
    flushed; ``refuse_at`` makes ``produce`` itself raise for that record."""

    def __init__(
        self,
        report: Callable[[int], KafkaError | None],
        refuse_at: tuple[int, KafkaError] | None = None,
    ) -> None:
        self.report = report
        self.refuse_at = refuse_at
        self.queued: list[Callable[[KafkaError | None, Any], None]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: Any) -> None:
        if self.refuse_at is not None and self.refuse_at[0] == len(self.queued):
            raise KafkaException(self.refuse_at[1])
        self.queued.append(on_delivery)

    def flush(self, timeout: float = 0) -> int:
        for index, callback in enumerate(self.queued):
            callback(self.report(index), None)
        self.queued.clear()
        return 0

    def poll(self, timeout: float = 0) -> int:
        return 0


def produce_with(fake: FakeProducer, n: int = 3) -> None:
    producer = KafkaProducer(NOWHERE, delivery_timeout_s=0.2)
    producer._producer = fake  # type: ignore[assignment]
    producer.produce("t", [(b"k", b"v%d" % i) for i in range(n)])


def only_record(index: int, code: int) -> Callable[[int], KafkaError | None]:
    return lambda i: KafkaError(code) if i == index else None


def test_produce_returns_when_every_record_is_acknowledged() -> None:
    produce_with(FakeProducer(lambda _: None))


@pytest.mark.parametrize(
    "code",
    [KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG],
    ids=["too-large", "invalid-record", "invalid-msg"],
)
def test_a_record_refused_for_what_it_is_is_a_validation_error_not_an_outage(code: int) -> None:
    with pytest.raises(ValidationError, match=r"refused 1 of 3 records .* for good") as raised:
        produce_with(FakeProducer(only_record(1, code)))
    assert not isinstance(raised.value, BackendUnavailableError)


def test_a_record_too_large_for_the_client_is_refused_before_it_is_sent() -> None:
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    with pytest.raises(ValidationError, match=r"record 2 of 3 .*\(MSG_SIZE_TOO_LARGE\)"):
        produce_with(FakeProducer(lambda _: None, refuse_at=(1, too_large)))


@pytest.mark.parametrize(
    "code",
    [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED],
    ids=["topic", "cluster"],
)
def test_a_topic_refused_to_us_is_a_backend_error_not_an_outage(code: int) -> None:
    with pytest.raises(BackendError, match="for good") as raised:
        produce_with(FakeProducer(lambda _: KafkaError(code)))
    assert not isinstance(raised.value, BackendUnavailableError)


@pytest.mark.parametrize(
    "code",
    [KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT, KafkaError.UNKNOWN_TOPIC_OR_PART],
    ids=["timed-out", "transport", "unknown-topic"],
)
def test_an_outage_or_a_passing_state_stays_unavailable(code: int) -> None:
    # an unknown topic passes: the services create their topics in the background
    with pytest.raises(BackendUnavailableError):
        produce_with(FakeProducer(only_record(0, code)))
    with pytest.raises(BackendUnavailableError):
        produce_with(FakeProducer(lambda _: None, refuse_at=(0, KafkaError(code))))


def test_a_refusal_wins_over_an_outage_in_the_same_call() -> None:
    def report(index: int) -> KafkaError | None:
        return KafkaError(KafkaError._MSG_TIMED_OUT if index == 0 else KafkaError.INVALID_RECORD)

    with pytest.raises(ValidationError):
        produce_with(FakeProducer(report))
