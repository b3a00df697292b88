"""Behaviour every event log (:mod:`mlrec.events.log`) must have: Kafka's model.

A test module subclasses :class:`EventLogContract` and provides the ``event_log``
fixture: an :class:`~mlrec.backends.factory.EventLog` (embedded SQLite or a real
Kafka broker). Every test makes its own topics and groups (unique names), so the
suite can run against a shared broker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from mlrec.backends.factory import EventLog
from mlrec.events.log import EventConsumer, EventFollower, EventProducer, LogRecord

OpenConsumer = Callable[[str, str], EventConsumer]
"""Opens a consumer of ``(group, topic)``; the fixture closes it after the test."""


def poll_until(
    consumer: EventConsumer | EventFollower, count: int, timeout_s: float
) -> list[LogRecord]:
    """Poll until ``count`` records arrived or ``timeout_s`` passed; what arrived."""
    out: list[LogRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count and time.monotonic() < deadline:
        out.extend(consumer.poll(count - len(out), 0.2))
    return out


class EventLogContract:
    """The rules of :mod:`mlrec.events.log`, as tests."""

    #: How long a test waits for records it expects (a broker needs a group join).
    wait_s: ClassVar[float] = 5.0
    #: How long a test waits to be sure nothing more arrives.
    quiet_s: ClassVar[float] = 0.5

    @pytest.fixture
    def event_log(self) -> EventLog:
        raise NotImplementedError

    @pytest.fixture
    def names(self) -> Iterator[str]:
        prefix = f"t.contract.{uuid.uuid4().hex[:10]}"
        yield prefix

    @pytest.fixture
    def producer(self, event_log: EventLog) -> Iterator[EventProducer]:
        producer = event_log.producer()
        yield producer
        producer.close()

    @pytest.fixture
    def open_consumer(self, event_log: EventLog) -> Iterator[OpenConsumer]:
        opened: list[EventConsumer] = []

        def open_(group: str, topic: str) -> EventConsumer:
            consumer = event_log.consumer(group, [topic])
            opened.append(consumer)
            return consumer

        yield open_
        for consumer in opened:
            consumer.close()

    @pytest.fixture
    def open_follower(self, event_log: EventLog) -> Iterator[Callable[[str], EventFollower]]:
        opened: list[EventFollower] = []

        def open_(topic: str) -> EventFollower:
            follower = event_log.follower([topic])
            opened.append(follower)
            return follower

        yield open_
        for follower in opened:
            follower.close()

    def topic(self, event_log: EventLog, names: str, partitions: int = 1) -> str:
        name = f"{names}.{uuid.uuid4().hex[:6]}"
        event_log.ensure_topics({name: partitions})
        return name

    def values(self, records: list[LogRecord]) -> list[bytes]:
        return [r.value for r in records]

    # -- produce and poll ------------------------------------------------------------

    def test_records_round_trip_when_produced_then_polled(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_consumer: OpenConsumer,
    ) -> None:
        topic = self.topic(event_log, names)
        producer.produce(topic, [(b"k1", b"v1"), (None, b"v2"), (b"k1", b"v3")])

        records = poll_until(open_consumer(f"{names}.g", topic), 3, self.wait_s)

        assert self.values(records) == [b"v1", b"v2", b"v3"]
        assert [r.key for r in records] == [b"k1", None, b"k1"]
        assert {r.topic for r in records} == {topic}
        assert [r.offset for r in records] == sorted(r.offset for r in records)

    def test_a_producer_is_reachable_when_the_log_is_up(self, producer: EventProducer) -> None:
        assert producer.reachable()

    def test_produce_returns_quietly_when_given_no_records(
        self, event_log: EventLog, names: str, producer: EventProducer
    ) -> None:
        producer.produce(self.topic(event_log, names), [])

    def test_poll_returns_empty_when_nothing_is_there(
        self, event_log: EventLog, names: str, open_consumer: OpenConsumer
    ) -> None:
        consumer = open_consumer(f"{names}.g", self.topic(event_log, names))
        assert consumer.poll(10, self.quiet_s) == []

    def test_poll_returns_at_most_max_records_when_more_are_waiting(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_consumer: OpenConsumer,
    ) -> None:
        topic = self.topic(event_log, names)
        producer.produce(topic, [(b"k", str(i).encode()) for i in range(20)])
        consumer = open_consumer(f"{names}.g", topic)

        batches: list[list[LogRecord]] = []
        deadline = time.monotonic() + self.wait_s
        while sum(map(len, batches)) < 20 and time.monotonic() < deadline:
            batches.append(consumer.poll(5, 0.2))

        assert max(map(len, batches)) <= 5
        assert [r.value for b in batches for r in b] == [str(i).encode() for i in range(20)]

    def test_each_key_stays_in_order_when_keys_interleave(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_consumer: OpenConsumer,
    ) -> None:
        topic = self.topic(event_log, names, partitions=3)
        records = [(f"user-{i % 7}".encode(), f"{i % 7}:{i}".encode()) for i in range(140)]
        for start in range(0, len(records), 20):
            producer.produce(topic, records[start : start + 20])

        got = poll_until(open_consumer(f"{names}.g", topic), 140, self.wait_s)

        assert len(got) == 140
        by_key: dict[bytes, list[int]] = {}
        for r in got:
            assert r.key is not None
            assert r.value.startswith(r.key.removeprefix(b"user-") + b":")
            by_key.setdefault(r.key, []).append(int(r.value.split(b":")[1]))
        assert all(seq == sorted(seq) for seq in by_key.values())
        assert sum(len(seq) for seq in by_key.values()) == 140

    def test_records_spread_over_partitions_by_key_when_topic_has_several(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_consumer: OpenConsumer,
    ) -> None:
        topic = self.topic(event_log, names, partitions=4)
        producer.produce(topic, [(f"user-{i % 40}".encode(), b"x") for i in range(200)])

        got = poll_until(open_consumer(f"{names}.g", topic), 200, self.wait_s)

        assert len(got) == 200
        partitions_of_key: dict[bytes | None, set[int]] = {}
        for r in got:
            partitions_of_key.setdefault(r.key, set()).add(r.partition)
        assert all(len(p) == 1 for p in partitions_of_key.values())
        assert {r.partition for r in got} == {0, 1, 2, 3}
        assert len({(r.partition, r.offset) for r in got}) == 200

    # -- consumer groups -------------------------------------------------------------

    def test_new_consumer_resumes_after_commit_when_group_is_the_same(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_consumer: OpenConsumer,
    ) -> None:
        topic = self.topic(event_log, names)
        producer.produce(topic, [(b"k", b"a"), (b"k", b"b")])
        first = open_consumer(f"{names}.g", topic)
        assert self.values(poll_until(first, 2, self.wait_s)) == [b"a", b"b"]
        first.commit()
        first.close()
        producer.produce(topic, [(b"k", b"c")])

        second = open_consumer(f"{names}.g", topic)

        assert self.values(poll_until(second, 1, self.wait_s)) == [b"c"]
        assert second.poll(10, self.quiet_s) == []

    def test_uncommitted_records_are_redelivered_when_a_new_consumer_joins(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_consumer: OpenConsumer,
    ) -> None:
        topic = self.topic(event_log, names)
        producer.produce(topic, [(b"k", b"a"), (b"k", b"b"), (b"k", b"c")])
        first = open_consumer(f"{names}.g", topic)
        assert len(poll_until(first, 1, self.wait_s)) == 1
        first.commit()  # only "a"
        assert self.values(poll_until(first, 2, self.wait_s)) == [b"b", b"c"]
        first.close()  # "b" and "c" were never committed

        second = open_consumer(f"{names}.g", topic)

        assert self.values(poll_until(second, 2, self.wait_s)) == [b"b", b"c"]

    def test_commit_through_records_leaves_later_polled_records_uncommitted(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_consumer: OpenConsumer,
    ) -> None:
        topic = self.topic(event_log, names)
        producer.produce(topic, [(b"k", v) for v in (b"a", b"b", b"c", b"d")])
        first = open_consumer(f"{names}.g", topic)
        polled = poll_until(first, 4, self.wait_s)
        assert self.values(polled) == [b"a", b"b", b"c", b"d"]
        first.commit(through=polled[:2])  # "a" and "b" applied; "c", "d" still in flight
        first.close()

        second = open_consumer(f"{names}.g", topic)

        assert self.values(poll_until(second, 2, self.wait_s)) == [b"c", b"d"]
        assert second.poll(10, self.quiet_s) == []

    def test_rewind_redelivers_uncommitted_records_when_called_after_a_failure(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_consumer: OpenConsumer,
    ) -> None:
        topic = self.topic(event_log, names, partitions=2)
        producer.produce(topic, [(f"k{i}".encode(), str(i).encode()) for i in range(10)])
        consumer = open_consumer(f"{names}.g", topic)
        committed = poll_until(consumer, 10, self.wait_s)
        consumer.commit()
        producer.produce(topic, [(f"k{i}".encode(), str(i).encode()) for i in range(10, 16)])
        failed = poll_until(consumer, 6, self.wait_s)
        assert len(committed) == 10
        assert len(failed) == 6

        consumer.rewind()
        again = poll_until(consumer, 6, self.wait_s)

        assert sorted(self.values(again)) == sorted(self.values(failed))
        assert consumer.poll(10, self.quiet_s) == []

    def test_rewind_starts_from_the_beginning_when_nothing_was_committed(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_consumer: OpenConsumer,
    ) -> None:
        topic = self.topic(event_log, names)
        producer.produce(topic, [(b"k", b"a"), (b"k", b"b")])
        consumer = open_consumer(f"{names}.g", topic)
        assert len(poll_until(consumer, 2, self.wait_s)) == 2

        consumer.rewind()

        assert self.values(poll_until(consumer, 2, self.wait_s)) == [b"a", b"b"]

    def test_groups_read_independently_when_one_commits(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_consumer: OpenConsumer,
    ) -> None:
        topic = self.topic(event_log, names)
        producer.produce(topic, [(b"k", b"a"), (b"k", b"b")])
        one = open_consumer(f"{names}.one", topic)
        assert len(poll_until(one, 2, self.wait_s)) == 2
        one.commit()

        other = open_consumer(f"{names}.other", topic)

        assert self.values(poll_until(other, 2, self.wait_s)) == [b"a", b"b"]

    def test_lag_counts_unconsumed_records_when_consumer_is_behind(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_consumer: OpenConsumer,
    ) -> None:
        topic = self.topic(event_log, names, partitions=2)
        producer.produce(topic, [(f"k{i}".encode(), b"x") for i in range(10)])
        consumer = open_consumer(f"{names}.g", topic)
        got = poll_until(consumer, 4, self.wait_s)
        assert len(got) == 4

        assert consumer.lag() == 6
        assert len(poll_until(consumer, 6, self.wait_s)) == 6
        consumer.commit()
        assert consumer.lag() == 0
        producer.produce(topic, [(b"k1", b"y")])
        assert consumer.lag() == 1

    def test_commit_is_harmless_when_nothing_was_polled(
        self, event_log: EventLog, names: str, open_consumer: OpenConsumer
    ) -> None:
        consumer = open_consumer(f"{names}.g", self.topic(event_log, names))
        consumer.commit()
        consumer.rewind()
        assert consumer.lag() == 0

    # -- followers -------------------------------------------------------------------

    def test_follower_reads_only_records_appended_after_it_opened(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_follower: Callable[[str], EventFollower],
    ) -> None:
        topic = self.topic(event_log, names, partitions=2)
        producer.produce(topic, [(b"k1", b"before"), (b"k2", b"before")])
        follower = open_follower(topic)

        producer.produce(topic, [(b"k1", b"after-1"), (b"k2", b"after-2")])

        assert sorted(self.values(poll_until(follower, 3, self.wait_s))) == [
            b"after-1",
            b"after-2",
        ]

    def test_every_follower_reads_every_record_when_several_follow_a_topic(
        self,
        event_log: EventLog,
        names: str,
        producer: EventProducer,
        open_follower: Callable[[str], EventFollower],
    ) -> None:
        topic = self.topic(event_log, names)
        one, other = open_follower(topic), open_follower(topic)

        producer.produce(topic, [(b"k", b"a"), (b"k", b"b")])

        assert self.values(poll_until(one, 2, self.wait_s)) == [b"a", b"b"]
        assert self.values(poll_until(other, 2, self.wait_s)) == [b"a", b"b"]
        assert one.poll(10, self.quiet_s) == []
