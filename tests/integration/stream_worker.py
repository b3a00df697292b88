"""A stream processor in a process of its own, for the scale-out tests to SIGKILL.

Built as ``mlrec serve stream`` builds it (settings from the ``MLREC_*`` environment:
``MLREC_KAFKA_BOOTSTRAP_SERVERS``, ``MLREC_REDIS_URL``; :func:`realtime_sink`, a
pipelined :class:`StreamProcessor` on a :class:`KafkaConsumer`), but on a topic,
group and Redis key prefix of the test's own, so it can run beside other tests.

With ``--hang-after N``, once the sink has applied at least N events it writes that
count to ``--marker`` and never returns from the apply: the batch is in Redis but its
offsets are not committed (nor those of the batch polled behind it), the state a
crash mid-stream leaves. The test then kills the process.

Not collected by pytest (no ``test_`` prefix); run as
``python tests/integration/stream_worker.py --topic T --group G --prefix P ...``.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

from mlrec.backends.kafka import KafkaConsumer, KafkaProducer
from mlrec.backends.redis_features import RedisOnlineStore
from mlrec.core.settings import CommonSettings
from mlrec.events.processor import StreamProcessor
from mlrec.features.realtime import RealtimeFeatures
from mlrec.services.stream import RealtimeSink


class HangingSink(RealtimeSink):
    """The real sink; once ``hang_after`` events were applied, it blocks for good."""

    def __init__(self, realtime: RealtimeFeatures, hang_after: int, marker: Path | None) -> None:
        super().__init__(realtime)
        self.hang_after = hang_after
        self.marker = marker
        self.applied = 0

    def apply(self, prepared: object) -> int:
        applied = super().apply(prepared)
        self.applied += applied
        if self.hang_after and self.applied >= self.hang_after:
            if self.marker is not None:
                tmp = self.marker.with_suffix(".tmp")
                tmp.write_text(str(self.applied))
                tmp.rename(self.marker)  # the test never reads a half-written count
            threading.Event().wait()  # applied, never committed: killed here
        return applied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--prefix", required=True, help="Redis key prefix of the features")
    parser.add_argument("--max-batch", type=int, default=50)
    parser.add_argument("--hang-after", type=int, default=0)
    parser.add_argument("--marker", type=Path, default=None)
    parser.add_argument(
        "--session-timeout-ms",
        type=int,
        default=6000,
        help="how soon the broker gives a killed member's partitions away (its minimum)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    config = CommonSettings()
    if not config.kafka_bootstrap_servers or not config.redis_url:
        raise SystemExit("MLREC_KAFKA_BOOTSTRAP_SERVERS and MLREC_REDIS_URL must be set")
    store = RedisOnlineStore(config.redis_url, key_prefix=args.prefix, socket_timeout=5.0)
    consumer = KafkaConsumer(
        config.kafka_bootstrap_servers,
        args.group,
        [args.topic],
        config={"session.timeout.ms": args.session_timeout_ms, "heartbeat.interval.ms": 1000},
    )
    processor = StreamProcessor(
        consumer,
        HangingSink(RealtimeFeatures(store), args.hang_after, args.marker),
        KafkaProducer(config.kafka_bootstrap_servers, client_id="stream-worker"),
        max_batch=args.max_batch,
        pipeline=True,
    )
    print(f"stream worker: group {args.group} on {args.topic}", flush=True)
    try:
        processor.run(retry_delay=0.2)
    finally:
        consumer.close()
        store.close()


if __name__ == "__main__":
    main()
