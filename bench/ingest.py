"""Ingestion benchmark: the stream processor on one consumer vs a bare Kafka consumer.

N valid interaction events are produced once to a fresh topic on the real broker
(``scripts/services.sh``). Then, in each round (a new consumer group each time):

* **bare**: a confluent-kafka consumer that only reads the topic (``consume`` in
  batches, nothing else): the ceiling for one consumer on this machine;
* **processor**: one :class:`~mlrec.events.processor.StreamProcessor` on a
  :class:`~mlrec.backends.kafka.KafkaConsumer`, decoding every event and applying it
  to :class:`~mlrec.features.realtime.RealtimeFeatures` on the real Redis (a fresh
  key prefix per round, so nothing is skipped as a duplicate), committing each batch.

Times run from the moment the consumer's partitions are assigned to the last
record (the group join is not counted for either). Not from the first record: while
a consumer waits for its first poll to return, librdkafka prefetches up to 100,000
records, which a consumer as fast as the bare one then drains from memory before its
clock starts (bare rates from 150k to 750k/s in consecutive rounds; counted from the
assignment, most rounds read ~150k/s). The rounds interleave bare and processor
runs, and the figures are medians over rounds (the machine is shared). The topic is
deleted at the end (best effort: the broker is shared).

    python bench/ingest.py                        # 200,000 events, 5 rounds
    python bench/ingest.py --events 50000 --rounds 1 --batch 2000

The last line is the summary: ``ingest: events_per_s=<x> ratio_to_bare=<x>``.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from confluent_kafka import Consumer
from rich.console import Console
from rich.table import Table

from _services import delete_topics, ensure_services, quiet_logging
from mlrec.backends.kafka import KafkaConsumer, KafkaProducer, ensure_topics
from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.events import (
    DLQ_TOPIC,
    EventType,
    InteractionEvent,
    encode_event,
    event_key,
)
from mlrec.events.processor import StreamProcessor
from mlrec.features.online_store import OnlineStore
from mlrec.features.realtime import RealtimeFeatures
from mlrec.services.stream import realtime_sink

TYPES = [EventType.VIEW] * 6 + [EventType.CLICK] * 3 + [EventType.ADD_TO_CART, EventType.PURCHASE]


def make_events(n: int, users: int, items: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """``n`` encoded events, keyed by user, over the last hour."""
    rng = random.Random(seed)
    now = time.time()
    out: list[tuple[bytes, bytes]] = []
    for i in range(n):
        event = InteractionEvent(
            event_id=f"bench-{i}",
            user_id=f"user-{rng.randrange(users)}",
            item_id=f"item-{int(rng.paretovariate(1.2) * 10) % items}",
            type=rng.choice(TYPES),
            timestamp=now - 3600 + 3600 * i / n,
        )
        out.append((event_key(event), encode_event(event)))
    return out


def run_bare(bootstrap: str, topic: str, n: int, batch: int) -> float:
    """Events/s of a consumer that only reads."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench.bare.{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "queued.min.messages": 100_000,
        }
    )
    assigned: list[float] = []
    consumer.subscribe([topic], on_assign=lambda _c, _p: assigned.append(time.perf_counter()))
    seen = 0
    try:
        while seen < n:
            messages = consumer.consume(batch, 1.0)
            seen += sum(1 for m in messages if m.error() is None)
        return n / (time.perf_counter() - assigned[0])
    finally:
        consumer.close()


class _AssignmentClock(KafkaConsumer):
    """A :class:`KafkaConsumer` that notes when its partitions were first assigned."""

    assigned_at: float | None = None

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        if self.assigned_at is None:
            self.assigned_at = time.perf_counter()
        super()._on_assign(consumer, partitions)


def run_processor(
    bootstrap: str, topic: str, n: int, batch: int, store: OnlineStore, prefix: str
) -> float:
    """Events/s of one stream processor applying to real-time features."""
    consumer = _AssignmentClock(bootstrap, f"bench.proc.{uuid.uuid4().hex[:8]}", [topic])
    features = RealtimeFeatures(store, prefix=prefix)
    dlq = KafkaProducer(bootstrap, client_id="bench-dlq")
    processor = StreamProcessor(
        consumer, realtime_sink(features), dlq, max_batch=batch, pipeline=True
    )
    gc.freeze()  # as `mlrec serve stream` does after start-up
    try:
        while processor.stats.records < n:
            processor.run_once()
        processor.finish()  # the last batch is applied and committed
        assert consumer.assigned_at is not None  # records were read
        elapsed = time.perf_counter() - consumer.assigned_at
        if processor.stats.applied != n:
            print(f"warning: applied {processor.stats.applied} of {n}", file=sys.stderr)
        return n / elapsed
    finally:
        consumer.close()
        dlq.close()


def open_store(redis_url: str | None, console: Console) -> tuple[OnlineStore, str]:
    if redis_url:
        try:
            from mlrec.backends.redis_features import RedisOnlineStore

            store = RedisOnlineStore(redis_url, key_prefix="mlrecbench", socket_timeout=5.0)
            store.flush_prefix()
            return store, f"Redis {redis_url}"
        except Exception as exc:
            console.print(f"[yellow]Redis store unavailable ({exc}); using the in-memory store")
    return InMemoryOnlineStore(), "in-memory store (fallback)"


def produce_and_run(
    args: argparse.Namespace, bootstrap: str, topic: str, store: OnlineStore, console: Console
) -> tuple[list[float], list[float]]:
    """Produce the events once, then the interleaved rounds: (bare, processor) events/s."""
    t0 = time.perf_counter()
    records = make_events(args.events, args.users, args.items)
    producer = KafkaProducer(
        bootstrap, client_id="bench-ingest", linger_ms=20, delivery_timeout_s=60
    )
    for start in range(0, len(records), 20_000):
        producer.produce(topic, records[start : start + 20_000])
    producer.close()
    console.print(f"produced {args.events:,} events in {time.perf_counter() - t0:.1f} s")

    bare: list[float] = []
    proc: list[float] = []
    for r in range(args.rounds):
        bare.append(run_bare(bootstrap, topic, args.events, args.batch))
        proc.append(run_processor(bootstrap, topic, args.events, args.batch, store, f"r{r}_"))
        console.print(f"round {r + 1}: bare {bare[-1]:,.0f}/s  processor {proc[-1]:,.0f}/s")
    return bare, proc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=5000, help="records per poll")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--memory-store", action="store_true", help="skip Redis")
    args = parser.parse_args(argv)
    console = Console()
    quiet_logging()

    env = ensure_services()
    bootstrap = env["MLREC_TEST_KAFKA_BOOTSTRAP"]
    store, store_name = open_store(
        None if args.memory_store else env.get("MLREC_TEST_REDIS_URL"), console
    )
    topic = f"mlrec.bench.ingest.{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {topic: args.partitions, DLQ_TOPIC: 1})
    console.print(
        f"sink: RealtimeFeatures on {store_name}; topic {topic} ({args.partitions} partitions)"
    )
    try:
        bare, proc = produce_and_run(args, bootstrap, topic, store, console)
    finally:
        delete_topics(bootstrap, [topic])  # the broker is shared: leave nothing behind
    if hasattr(store, "flush_prefix"):
        store.flush_prefix()

    bare_median, proc_median = statistics.median(bare), statistics.median(proc)
    table = Table(title=f"Ingestion, one consumer, {args.events:,} events, median of {args.rounds}")
    table.add_column("consumer")
    table.add_column("events/s", justify="right")
    table.add_column("vs bare", justify="right")
    table.add_row("bare confluent consumer (read only)", f"{bare_median:,.0f}", "1.00")
    table.add_row(
        f"StreamProcessor -> RealtimeFeatures ({store_name})",
        f"{proc_median:,.0f}",
        f"{proc_median / bare_median:.2f}",
    )
    console.print(table)
    print(f"ingest: events_per_s={proc_median:.0f} ratio_to_bare={proc_median / bare_median:.3f}")


if __name__ == "__main__":
    main()
