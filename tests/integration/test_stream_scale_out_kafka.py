"""The stream processor scales out by partitions: on the real Kafka broker and Redis.

Several processors in one consumer group split the partitions of the interactions
topic; whatever happens to one of them (it joins, stops cleanly, is SIGKILLed
mid-stream), every event ends up applied to the real-time features exactly once:
the features equal what one processor makes of the same events, each user's
activity counts every event once, and the group's committed offsets reach the end.

Each test has its own topic, group and Redis key prefix, so it can run beside other
tests on the shared servers; it waits for conditions with deadlines, never for time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from mlrec.backends.kafka import KafkaConsumer, KafkaProducer, ensure_topics
from mlrec.backends.redis_features import RedisOnlineStore
from mlrec.core.clock import ManualClock
from mlrec.events import InteractionEvent, encode_event, event_key
from mlrec.events.log import LogRecord
from mlrec.events.processor import StreamProcessor
from mlrec.events.schemas import EventType
from mlrec.features.realtime import RealtimeFeatures
from mlrec.services.stream import RealtimeSink, realtime_sink
from tests.polling import wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 6
USERS = [f"user-{n}" for n in range(48)]  # keyed by user: these fill all 6 partitions
ITEMS = 30
TYPES = [EventType.VIEW, EventType.CLICK, EventType.PURCHASE, EventType.VIEW]
MAX_BATCH = 50
WORKER = Path(__file__).with_name("stream_worker.py")
REPO = Path(__file__).resolve().parents[2]


# -- helpers ----------------------------------------------------------------------------


def make_events(tag: str, n: int) -> list[InteractionEvent]:
    """``n`` distinct events over every user, each user's in timestamp order."""
    start = time.time() - 300
    return [
        InteractionEvent(
            event_id=f"{tag}-{i}",
            user_id=USERS[i % len(USERS)],
            item_id=f"item-{(i * 7 + i // len(USERS)) % ITEMS}",
            type=TYPES[i % len(TYPES)],
            timestamp=start + i * 0.05,
        )
        for i in range(n)
    ]


def chunked(events: Sequence[InteractionEvent], size: int) -> list[list[tuple[bytes, bytes]]]:
    records = [(event_key(e), encode_event(e)) for e in events]
    return [records[i : i + size] for i in range(0, len(records), size)]


class Stream(threading.Thread):
    """Produces chunks of records one after another (events keep arriving); before
    chunk ``pause_at`` it waits for ``resume`` (so a test can act mid-stream)."""

    def __init__(
        self,
        producer: KafkaProducer,
        topic: str,
        chunks: list[list[tuple[bytes, bytes]]],
        pause_at: int | None = None,
    ) -> None:
        super().__init__(name="stream-producer", daemon=True)
        self.producer = producer
        self.topic = topic
        self.chunks = chunks
        self.pause_at = pause_at
        self.resume = threading.Event()
        self.produced = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for n, chunk in enumerate(self.chunks):
                if n == self.pause_at and not self.resume.wait(30):
                    raise TimeoutError("the test never resumed the stream")
                self.producer.produce(self.topic, chunk)
                self.produced += len(chunk)
                time.sleep(0.02)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, timeout: float = 20) -> None:
        self.resume.set()
        self.join(timeout)
        assert not self.is_alive(), "the producer did not finish"
        if self.error is not None:
            raise self.error


class RecordingConsumer(KafkaConsumer):
    """The real consumer, noting its assignment and which partitions it polled from."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.assignment: frozenset[int] = frozenset()
        self.polled: Counter[int] = Counter()
        self._lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        super()._on_assign(consumer, partitions)
        self.assignment = frozenset(p for _, p in self._assigned)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        super()._on_revoke(consumer, partitions)
        self.assignment = frozenset(p for _, p in self._assigned)

    def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
        records = super().poll(max_records, timeout_seconds)
        with self._lock:
            self.polled.update(r.partition for r in records)
        return records

    def polled_partitions(self) -> set[int]:
        with self._lock:
            return set(self.polled)


class ScriptedConsumer(RecordingConsumer):
    """The real consumer, whose first poll gathers ``gather`` records (from every
    partition) and whose second returns only once a rebalance revoked its partitions
    (a poll that happens to serve a rebalance: the batch polled before is in flight)."""

    def __init__(self, *args: Any, gather: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gather = gather
        self.revoked = threading.Event()
        self.polls = 0

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        super()._on_revoke(consumer, partitions)
        if partitions:
            self.revoked.set()

    def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
        self.polls += 1
        if self.polls > 2:
            return super().poll(max_records, timeout_seconds)
        out: list[LogRecord] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.polls == 1 and len(out) >= self.gather:
                break
            if self.polls == 2 and self.revoked.is_set():
                break
            out += super().poll(max_records - len(out), 0.1)
        return out


class GatedSink(RealtimeSink):
    """The real sink; the batch applied while ``hold`` is set does not return (so is
    not committed) until ``release`` is set."""

    def __init__(self, realtime: RealtimeFeatures) -> None:
        super().__init__(realtime)
        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()

    def apply(self, prepared: object) -> int:
        applied = super().apply(prepared)
        if self.hold.is_set():
            self.hold.clear()
            self.held.set()
            if not self.release.wait(30):
                raise TimeoutError("the test never released the batch")
        return applied


class Member:
    """One stream processor of the group, running pipelined in a thread as the
    service runs it (``mlrec serve stream``)."""

    def __init__(
        self,
        consumer: RecordingConsumer,
        sink: RealtimeSink,
        bootstrap: str,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.consumer = consumer
        self.dlq = KafkaProducer(bootstrap, client_id="test-dlq")
        self.processor = StreamProcessor(
            consumer, sink, self.dlq, max_batch=max_batch, pipeline=True
        )
        self.thread = threading.Thread(
            target=self.processor.run, kwargs={"retry_delay": 0.2}, daemon=True
        )
        self.closed = False

    def start(self) -> Member:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop cleanly, as on SIGTERM: finish the batch in flight, commit, leave."""
        if self.closed:
            return
        self.closed = True
        self.processor.stop()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the processor did not stop"
        self.consumer.close()
        self.dlq.close()

    @property
    def handled(self) -> int:
        stats = self.processor.stats
        return stats.applied + stats.duplicates


@dataclass
class Env:
    """What a test needs: its topic and group, its features and a reference."""

    bootstrap: str
    topic: str
    group: str
    store: RedisOnlineStore
    reference_store: RedisOnlineStore
    producer: KafkaProducer

    def member(self) -> Member:
        consumer = RecordingConsumer(self.bootstrap, self.group, [self.topic])
        return Member(consumer, realtime_sink(RealtimeFeatures(self.store)), self.bootstrap)


@pytest.fixture
def env(kafka_bootstrap: str, redis_url: str) -> Iterator[Env]:
    name = f"t.scale.{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, {name: PARTITIONS})
    tag = uuid.uuid4().hex[:10]
    store = RedisOnlineStore(redis_url, key_prefix=f"t{tag}", socket_timeout=5)
    reference = RedisOnlineStore(redis_url, key_prefix=f"t{tag}ref", socket_timeout=5)
    producer = KafkaProducer(kafka_bootstrap, client_id="test")
    try:
        yield Env(kafka_bootstrap, name, f"{name}.g", store, reference, producer)
    finally:
        producer.close()
        for s in (store, reference):
            s.flush_prefix()
            s.close()


def assert_applied_exactly_once(env: Env, events: Sequence[InteractionEvent]) -> None:
    """The features hold each event once: equal to one processor's (the same sink
    applying the same events, on another key prefix), each user's activity counting
    each of their events once and their seen ids being exactly their events'."""
    realtime_sink(RealtimeFeatures(env.reference_store))(events)
    now = time.time()
    got = RealtimeFeatures(env.store, clock=ManualClock(now))
    want = RealtimeFeatures(env.reference_store, clock=ManualClock(now))

    per_user: dict[str, set[str]] = {}
    for e in events:
        per_user.setdefault(e.user_id, set()).add(e.event_id)
    assert set(per_user) == set(USERS)
    seen = env.store.read_recent(got.seen_view, USERS, 10 * len(events))
    for user, ids in zip(USERS, seen, strict=True):
        assert {event_id for event_id, _ in ids} == per_user[user], user
        activity = got.activity(user)
        assert activity == want.activity(user), user
        assert activity["7d"] == len(per_user[user]), user

    got_recent, want_recent = got.recent_items_many(USERS), want.recent_items_many(USERS)
    for user, mine, theirs in zip(USERS, got_recent, want_recent, strict=True):
        assert [item for item, _ in mine] == [item for item, _ in theirs], user
        assert [t for _, t in mine] == pytest.approx([t for _, t in theirs], abs=1e-6), user

    got_top, want_top = got.popular_items(ITEMS), want.popular_items(ITEMS)
    assert len(got_top) == ITEMS
    assert [item for item, _ in got_top] == [item for item, _ in want_top]
    assert [s for _, s in got_top] == pytest.approx([s for _, s in want_top], rel=1e-9)


def group_positions(env: Env) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offset and the end of each partition."""
    reader = Consumer(
        {"bootstrap.servers": env.bootstrap, "group.id": env.group, "enable.auto.commit": False}
    )
    try:
        partitions = [TopicPartition(env.topic, p) for p in range(PARTITIONS)]
        committed = {tp.partition: tp.offset for tp in reader.committed(partitions, timeout=10)}
        ends = {
            tp.partition: reader.get_watermark_offsets(tp, timeout=10, cached=False)[1]
            for tp in partitions
        }
    finally:
        reader.close()
    return committed, ends


def assert_group_at_the_end(env: Env) -> None:
    """The group committed every partition up to its end: nothing left to redeliver."""
    committed, ends = group_positions(env)
    assert committed == ends


def two_members_split(env: Env) -> tuple[Member, Member]:
    """Two processors in the group, once each holds half of the partitions."""
    a = env.member().start()
    wait_for(lambda: len(a.consumer.assignment) == PARTITIONS, 20, "the first member to join")
    b = env.member().start()

    def split() -> bool:
        mine, theirs = a.consumer.assignment, b.consumer.assignment
        return len(mine) == len(theirs) == PARTITIONS // 2 and not mine & theirs

    wait_for(split, 20, "the group to split the partitions between the two members")
    return a, b


# -- tests ------------------------------------------------------------------------------


def test_two_processors_split_the_partitions_and_apply_every_event_once(env: Env) -> None:
    """Two members of the group each read only their half of the partitions, and
    together apply each distinct event once (some are stored twice in the log)."""
    events = make_events("split", 1200)
    # a client retrying (or a spool replay) stores some events twice: same id, same key
    again = events[::10]
    chunks = chunked(events, 40) + chunked(again, 40)
    records = len(events) + len(again)
    a, b = two_members_split(env)
    half_a, half_b = a.consumer.assignment, b.consumer.assignment
    stream = Stream(env.producer, env.topic, chunks)
    try:
        stream.start()
        stream.finish()
        wait_for(lambda: a.handled + b.handled >= records, 20, "every record to be handled")
    finally:
        a.stop()
        b.stop()

    # each processor read only its own half, and both had work
    assert a.consumer.polled_partitions() == half_a
    assert b.consumer.polled_partitions() == half_b
    assert half_a | half_b == set(range(PARTITIONS))
    # every distinct event applied once, the stored-twice ones recognised
    assert a.processor.stats.applied + b.processor.stats.applied == len(events)
    assert a.processor.stats.duplicates + b.processor.stats.duplicates == len(again)
    assert a.processor.stats.records + b.processor.stats.records == records
    assert a.processor.stats.dead_letters + b.processor.stats.dead_letters == 0
    assert_applied_exactly_once(env, events)
    assert_group_at_the_end(env)


def test_a_processor_stopping_cleanly_mid_stream_hands_its_partitions_over(env: Env) -> None:
    """One of two members stops (as on SIGTERM) while events keep arriving: the other
    takes its partitions over; nothing is lost or counted twice."""
    events = make_events("handover", 1800)
    chunks = chunked(events, 40)
    a, b = two_members_split(env)
    first_half_a, first_half_b = a.consumer.assignment, b.consumer.assignment
    stream = Stream(env.producer, env.topic, chunks, pause_at=len(chunks) // 3)
    try:
        stream.start()
        wait_for(
            lambda: a.processor.stats.applied > 0 and b.processor.stats.applied > 0,
            20,
            "both members to apply events",
        )
        polled_by_b = b.consumer.polled_partitions()
        stream.resume.set()  # events keep arriving while one member stops
        a.stop()
        stopped_at = a.processor.stats.records
        wait_for(
            lambda: b.consumer.assignment == set(range(PARTITIONS)),
            20,
            "the remaining member to take every partition",
        )
        stream.finish()
        wait_for(
            lambda: a.processor.stats.applied + b.processor.stats.applied >= len(events),
            20,
            "every event to be applied",
        )
    finally:
        a.stop()
        b.stop()

    # before the stop b read only its half; afterwards it read the other half too
    assert polled_by_b <= first_half_b
    assert first_half_a <= b.consumer.polled_partitions()
    assert 0 < stopped_at < len(events)  # a stopped mid-stream
    # nothing lost, nothing counted twice: a redelivered record is only a duplicate
    assert a.processor.stats.applied + b.processor.stats.applied == len(events)
    assert_applied_exactly_once(env, events)
    assert_group_at_the_end(env)


def test_a_killed_processor_is_replaced_and_every_event_is_applied_once(
    env: Env, redis_url: str, tmp_path: Path
) -> None:
    """A processor in its own process is SIGKILLed with a batch applied but not
    committed, while events keep arriving; a new one joins the group, gets that batch
    again, recognises it by event id, and applies exactly what the dead one had not."""
    events = make_events("killed", 1500)
    chunks = chunked(events, 50)
    hang_after = 300
    marker = tmp_path / "hung"
    log_path = tmp_path / "worker.log"
    environ = {
        **os.environ,
        "MLREC_KAFKA_BOOTSTRAP_SERVERS": env.bootstrap,
        "MLREC_REDIS_URL": redis_url,
        "MLREC_DATA_DIR": str(tmp_path / "data"),
    }
    command = [
        sys.executable,
        str(WORKER),
        f"--topic={env.topic}",
        f"--group={env.group}",
        f"--prefix={env.store.key_prefix}",
        f"--max-batch={MAX_BATCH}",
        f"--hang-after={hang_after}",
        f"--marker={marker}",
    ]
    # the stream pauses once more than hang_after events are out, until the kill
    stream = Stream(env.producer, env.topic, chunks, pause_at=len(chunks) // 2)
    successor: Member | None = None
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            command, cwd=REPO, env=environ, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        stream.start()

        def hung() -> bool:
            assert worker.poll() is None, f"the worker exited:\n{log_path.read_text()}"
            return marker.exists()

        wait_for(hung, 25, "the worker to apply events and hang before committing them")
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL

        # what the dead processor applied, read back from Redis: at least the batch
        # it never committed
        dead = RealtimeFeatures(env.store)
        applied_before = sum(dead.activity(user)["7d"] for user in USERS)
        assert applied_before >= int(marker.read_text()) >= hang_after
        assert applied_before < len(events)

        stream.resume.set()  # events keep arriving; a new processor joins the group
        successor = env.member().start()
        stream.finish()
        wait_for(
            lambda: (
                successor is not None
                and successor.processor.stats.applied >= len(events) - applied_before
            ),
            25,
            "the new processor to apply the rest",
        )
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        if successor is not None:
            successor.stop()

    assert successor is not None
    # the successor took every partition, got the uncommitted batches again and
    # recognised them, and applied exactly what the dead one had not
    assert successor.consumer.polled_partitions() == set(range(PARTITIONS))
    assert successor.processor.stats.duplicates > 0
    assert successor.processor.stats.applied == len(events) - applied_before
    assert_applied_exactly_once(env, events)
    assert_group_at_the_end(env)


def test_a_processor_losing_partitions_mid_batch_never_moves_the_group_back(env: Env) -> None:
    """A processor whose partitions move to another member while it still applies a
    batch must not commit that batch's positions for them afterwards: the new owner
    may have committed further, and the group would go back (a restart would then
    redeliver far more than the two batches the dedup window is sized for)."""
    events = make_events("moved", 1200)
    first, second = events[:600], events[600:]
    for chunk in chunked(first, 200):
        env.producer.produce(env.topic, chunk)
    sink = GatedSink(RealtimeFeatures(env.store))
    sink.hold.set()
    consumer = ScriptedConsumer(env.bootstrap, env.group, [env.topic], gather=len(first))
    a = Member(consumer, sink, env.bootstrap, max_batch=len(first)).start()
    b: Member | None = None
    try:
        # a polled every partition's records and applied them, without committing yet
        wait_for(sink.held.is_set, 20, "the first member to apply its first batch")
        assert consumer.polled_partitions() == set(range(PARTITIONS))
        b = env.member().start()  # a serves the rebalance while its batch is in flight
        wait_for(
            lambda: b is not None and len(b.consumer.assignment) == PARTITIONS // 2,
            20,
            "the second member to get half of the partitions",
        )
        moved = set(b.consumer.assignment)
        for chunk in chunked(second, 100):  # the new owner reads on, and commits
            env.producer.produce(env.topic, chunk)

        def moved_ones_committed() -> bool:
            committed, ends = group_positions(env)
            return all(committed[p] == ends[p] for p in moved)

        wait_for(moved_ones_committed, 20, "the new owner to commit its partitions' ends")
        sink.release.set()  # the old owner's batch returns now, and is committed
        wait_for(
            lambda: (
                b is not None
                and a.processor.stats.applied + b.processor.stats.applied
                == len(first) + len(second)
            ),
            20,
            "every event to be applied",
        )
        committed, ends = group_positions(env)
    finally:
        sink.release.set()
        a.stop()
        if b is not None:
            b.stop()

    assert {p: committed[p] for p in moved} == {p: ends[p] for p in moved}
    assert_applied_exactly_once(env, [*first, *second])
    assert_group_at_the_end(env)
