"""No-loss benchmark: produce through the spool while the Kafka broker restarts.

One thread produces N events (unique event ids) in batches through
:class:`~mlrec.backends.spool.DurableProducer` wrapping
:class:`~mlrec.backends.kafka.KafkaProducer`, counting an event as *accepted* when
``produce`` returned (what the API answers 202 for). Another thread restarts the
real broker once, mid-way: ``scripts/services.sh down kafka`` (SIGTERM),
wait for it to exit, then ``scripts/services.sh up kafka`` (same command line, same
data directory). Meanwhile one :class:`~mlrec.events.processor.StreamProcessor`
applies the topic to real-time features (Redis, or the in-memory store) and keeps
running until it has caught up. The bench's topic is deleted at the end (best effort).

    python bench/loss.py                  # 100,000 events
    python bench/loss.py --events 20000 --memory-store

The last line is the summary: ``loss: accepted=<n> applied=<n>``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rich.console import Console

from _services import ROOT, delete_topics, ensure_services, quiet_logging
from ingest import make_events, open_store
from mlrec.backends.kafka import KafkaConsumer, KafkaProducer, ensure_topics
from mlrec.backends.spool import DurableProducer
from mlrec.events import DLQ_TOPIC
from mlrec.events.processor import StreamProcessor
from mlrec.features.realtime import RealtimeFeatures
from mlrec.services.stream import RealtimeSink


class _IdSink(RealtimeSink):
    """The processor's sink, also noting the event ids of every batch it applied: the
    summary counts accepted *ids* that reached the store, not a total that a refused
    but delivered batch or a double apply could bring back to ``accepted``."""

    def __init__(self, realtime: RealtimeFeatures) -> None:
        super().__init__(realtime)
        self.applied_ids: set[str] = set()

    def prepare(self, events):  # type: ignore[no-untyped-def]
        return super().prepare(events), [e.event_id for e in events]

    def apply(self, prepared):  # type: ignore[no-untyped-def]
        batch, ids = prepared
        count = super().apply(batch)
        self.applied_ids.update(ids)  # applied now, or earlier (skipped as a duplicate)
        return count


def restart_broker(console: Console) -> float:
    """Stop the broker (``services.sh down kafka``: SIGTERM, and only a broker of this
    ``MLREC_SERVICES_DIR``) and start it again.

    Returns the seconds the broker was unavailable.
    """

    def services(command: str) -> None:
        subprocess.run(
            [str(ROOT / "scripts" / "services.sh"), command, "kafka"],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    started = time.monotonic()
    console.print("[bold]restart: stopping the broker")
    services("down")
    console.print(f"restart: broker down after {time.monotonic() - started:.1f} s; starting it")
    services("up")
    down = time.monotonic() - started
    console.print(f"[bold]restart: broker back after {down:.1f} s")
    return down


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="events per produce call")
    parser.add_argument("--pace", type=float, default=0.05, help="seconds between batches")
    parser.add_argument("--restart-at", type=float, default=0.3, help="fraction accepted")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--memory-store", action="store_true", help="skip Redis")
    parser.add_argument("--catch-up-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    console = Console()
    quiet_logging()

    env = ensure_services()
    bootstrap = env["MLREC_TEST_KAFKA_BOOTSTRAP"]
    redis_url = None if args.memory_store else env.get("MLREC_TEST_REDIS_URL")
    store, store_name = open_store(redis_url, console)
    topic = f"mlrec.bench.loss.{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {topic: args.partitions, DLQ_TOPIC: 1})
    console.print(f"topic {topic}; sink: RealtimeFeatures on {store_name}")
    try:
        records = make_events(args.events, users=20_000, items=5_000, seed=11)

        spool_dir = Path(tempfile.mkdtemp(prefix="mlrec-loss-spool-"))
        producer = DurableProducer(
            KafkaProducer(bootstrap, client_id="bench-loss", delivery_timeout_s=3.0),
            spool_dir,
            retry_interval_s=0.5,
        )
        producer.start()
        consumer = KafkaConsumer(bootstrap, f"bench.loss.{uuid.uuid4().hex[:8]}", [topic])
        dlq = KafkaProducer(bootstrap, client_id="bench-loss-dlq", delivery_timeout_s=3.0)
        sink = _IdSink(RealtimeFeatures(store, prefix="loss_"))
        processor = StreamProcessor(
            consumer,
            sink,
            dlq,
            max_batch=5000,
            pipeline=True,  # as `mlrec serve stream` runs it
        )
        proc_thread = threading.Thread(target=processor.run, kwargs={"retry_delay": 0.5})
        proc_thread.start()

        accepted = 0
        accepted_ids: list[str] = []
        refused = 0
        max_spooled = 0
        restart_at = int(args.events * args.restart_at)
        restart_thread: threading.Thread | None = None
        t0 = time.monotonic()
        for start in range(0, len(records), args.batch):
            chunk = records[start : start + args.batch]
            try:
                producer.produce(topic, chunk)
                accepted += len(chunk)
                accepted_ids.extend(f"bench-{i}" for i in range(start, start + len(chunk)))
            except Exception as exc:  # not accepted: the API would answer 503
                refused += len(chunk)
                console.print(f"[red]batch refused: {exc}")
            max_spooled = max(max_spooled, producer.spooled())
            if restart_thread is None and accepted >= restart_at:
                restart_thread = threading.Thread(target=restart_broker, args=(console,))
                restart_thread.start()
            time.sleep(args.pace)
        console.print(
            f"produced: accepted {accepted:,}, refused {refused:,} in "
            f"{time.monotonic() - t0:.1f} s;"
            f" up to {max_spooled:,} spooled at once ({producer.spooled():,} still spooled)"
        )
        if restart_thread is not None:
            restart_thread.join()

        deadline = time.monotonic() + args.catch_up_timeout
        while producer.spooled() and time.monotonic() < deadline:
            time.sleep(0.2)
        console.print(f"spool drained ({producer.spooled()} left); waiting for the processor")
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            done = len(sink.applied_ids)
            if sink.applied_ids.issuperset(accepted_ids):
                break
            if done != last:
                last, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > 60:
                console.print("[red]processor made no progress for 60 s")
                break
            time.sleep(0.2)
        processor.stop()
        proc_thread.join()
        producer.close()
        consumer.close()
        dlq.close()
        if hasattr(store, "flush_prefix"):
            store.flush_prefix()
    finally:
        delete_topics(bootstrap, [topic])  # the broker is shared: leave nothing behind

    stats = processor.stats
    console.print(
        f"processor: {stats.records:,} records, {stats.applied:,} applied, "
        f"{stats.duplicates:,} duplicates (redelivered or re-sent, skipped by event id), "
        f"{stats.dead_letters} dead letters"
    )
    applied = len(sink.applied_ids.intersection(accepted_ids))
    console.print(
        f"accepted event ids applied: {applied:,} of {len(accepted_ids):,} "
        f"({len(accepted_ids) - applied:,} lost); ids applied that were not accepted: "
        f"{len(sink.applied_ids.difference(accepted_ids)):,}; applied total "
        f"{stats.applied:,} (a difference from the ids means an event applied twice)"
    )
    print(f"loss: accepted={accepted} applied={applied}")


if __name__ == "__main__":
    main()
