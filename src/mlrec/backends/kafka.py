"""Apache Kafka implementation of the event log protocol (:mod:`mlrec.events.log`).

* :class:`KafkaProducer`: idempotent producer, ``acks=all``; :meth:`~KafkaProducer.produce`
  returns only after the broker acknowledged every record of the call, otherwise it
  raises (within ``delivery_timeout_s`` plus a second of grace), so a caller never
  reports an event accepted that Kafka did not store:
  :class:`~mlrec.core.errors.BackendUnavailableError` when Kafka may take the
  records later (unreachable, timed out), and otherwise an error that retrying
  cannot fix, :class:`~mlrec.core.errors.ValidationError` for records
  refused for what they are (too large, malformed) and
  :class:`~mlrec.core.errors.BackendError` for a topic refused to us (authorization,
  invalid topic or producer settings); a spool must not hold those for a retry.
* :class:`KafkaConsumer`: a consumer-group member with manual commits. It commits
  exactly the positions after the records it handed out, so an ``apply, then
  commit`` loop is at-least-once; :meth:`~KafkaConsumer.rewind` moves back to the
  committed offsets after a failed batch. Scale-out is Kafka's: start more
  consumers in the same group, up to the topic's partition count.
* :class:`KafkaFollower`: reads topics from their end with partitions assigned by
  hand, in no group, committing nothing (a broadcast to every process).
* :func:`ensure_topics`: create topics with a partition count (idempotent; grows a
  topic that has fewer partitions, never shrinks one).

Example::

    ensure_topics("127.0.0.1:9092", {"mlrec.interactions": 6})
    producer = KafkaProducer("127.0.0.1:9092", client_id="api")
    producer.produce("mlrec.interactions", [(b"user-1", b"{...}")])
    consumer = KafkaConsumer("127.0.0.1:9092", "stream", ["mlrec.interactions"])
    records = consumer.poll(1000, 0.5)
    ...  # apply them
    consumer.commit()
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlrec.core.errors import BackendError, BackendUnavailableError, ValidationError
from mlrec.events.log import LogRecord, positions_after

try:
    from confluent_kafka import (
        OFFSET_BEGINNING,
        OFFSET_END,
        Consumer,
        KafkaError,
        KafkaException,
        Message,
        Producer,
        TopicPartition,
    )
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin._listoffsets import OffsetSpec
    from confluent_kafka.cimpl import NewPartitions, NewTopic
except ImportError as exc:  # pragma: no cover - confluent-kafka is a core dependency
    raise ImportError(
        "the Kafka event log needs confluent-kafka: pip install 'confluent-kafka>=2.4'"
    ) from exc

__all__ = ["FOLLOWER_GROUP", "KafkaConsumer", "KafkaFollower", "KafkaProducer", "ensure_topics"]

log = logging.getLogger(__name__)


class RepeatFilter(logging.Filter):
    """Lets one librdkafka line per (facility, client) through every ``interval``
    seconds, with a count of those held back: while a broker is down every client
    logs the same failure several times a second."""

    def __init__(self, interval: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[object, ...], float] = {}
        self._held: dict[tuple[object, ...], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        key = tuple(args[:2]) if len(args) >= 2 else (record.msg,)
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} (and %d similar lines in the last %.0f s)"
            record.args = (*args, held, self.interval)
        return True


# librdkafka's own log lines (connection refused while a broker restarts, ...): a
# separate logger so a deployment can quiet them without losing ours.
rdkafka_log = logging.getLogger(f"{__name__}.librdkafka")
rdkafka_log.addFilter(RepeatFilter())

# Refusals no retry changes. A record refused for what it is (too large for the
# broker or the topic, malformed) is refused again every time: the caller must drop
# or divert it, not queue everything else behind it.
_RECORD_REFUSALS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError._BAD_MSG,
    }
)
# A topic refused to us (no permission, an invalid topic name, settings the broker
# does not support): every record fails until an operator acts. An unknown topic is
# not among them: the services create their topics in the background (and a broker
# may auto-create them), so it is a passing state, retried like an outage.
_TOPIC_REFUSALS = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.INVALID_REQUIRED_ACKS,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        KafkaError.UNSUPPORTED_COMPRESSION_TYPE,
        KafkaError._INVALID_ARG,
    }
)


def _is_permanent(err: KafkaError) -> bool:
    return err.code() in _RECORD_REFUSALS or err.code() in _TOPIC_REFUSALS


def _refused(topic: str, err: KafkaError, what: str) -> ValidationError | BackendError:
    """The error for a refusal that retrying cannot fix (see :func:`_is_permanent`):
    a :class:`ValidationError` for a refused record, a :class:`BackendError` (never
    :class:`BackendUnavailableError`) for a refused topic."""
    message = f"Kafka refused {what} for {topic!r} for good: {err.str()} ({err.name()})"
    if err.code() in _RECORD_REFUSALS:
        return ValidationError(message)
    return BackendError(message)


class _Delivery:
    """Delivery reports of one :meth:`KafkaProducer.produce` call."""

    __slots__ = ("error", "lock", "pending", "refusal", "refused")

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.error: KafkaError | None = None
        self.refusal: KafkaError | None = None  # the first error no retry changes
        self.refused = 0  # records with such an error
        self.lock = threading.Lock()

    def __call__(self, err: KafkaError | None, _msg: Message) -> None:
        # Called from whichever thread polls the producer.
        with self.lock:
            self.pending -= 1
            if err is not None:
                if self.error is None:
                    self.error = err
                if _is_permanent(err):
                    self.refused += 1
                    if self.refusal is None:
                        self.refusal = err


class KafkaProducer:
    """Appends records to Kafka topics and waits for the broker's acknowledgement.

    Args:
        bootstrap: ``host:port[,host:port]`` of the brokers.
        client_id: shows up in broker logs and metrics.
        acks: ``"all"`` (the default) waits for every in-sync replica.
        enable_idempotence: broker-side dedup of producer retries, in-order delivery.
        delivery_timeout_s: librdkafka's ``message.timeout.ms``; a call waits for
            acknowledgements (or room in the local queue) at most this long plus one
            second before it raises :class:`BackendUnavailableError`.
        linger_ms: how long librdkafka waits to fill a batch; a call flushes anyway.
        config: extra librdkafka settings (they win over the arguments).

    Safe to share between threads: each call waits for its own records only.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "mlrec",
        acks: str = "all",
        enable_idempotence: bool = True,
        delivery_timeout_s: float = 5.0,
        linger_ms: float = 5.0,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.delivery_timeout_s = delivery_timeout_s
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "acks": acks,
            "enable.idempotence": enable_idempotence,
            "linger.ms": linger_ms,
            "message.timeout.ms": max(1, int(delivery_timeout_s * 1000)),
            # Fail fast on the first request too, and don't log a line per retry.
            "socket.connection.setup.timeout.ms": max(1000, int(delivery_timeout_s * 1000)),
            "queue.buffering.max.messages": 500_000,
            "batch.num.messages": 10_000,
            "error_cb": self._on_error,
            "logger": rdkafka_log,
        }
        self._config.update(config or {})
        self._fatal: KafkaError | None = None
        self._lock = threading.Lock()
        self._producer = Producer(self._config)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
            log.error("fatal Kafka producer error (the producer will be recreated): %s", err)
        else:
            log.debug("Kafka producer error: %s", err)

    def _client(self) -> Any:
        # An idempotent producer can hit a fatal error (e.g. after an outage made it
        # lose track of sequence numbers); it is unusable afterwards, so replace it.
        with self._lock:
            if self._fatal is not None:
                self._fatal = None
                old = self._producer
                self._producer = Producer(self._config)
                try:
                    old.purge()
                    old.flush(0)
                except KafkaException:
                    pass
            return self._producer

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Append ``records`` to ``topic``; return once the broker acknowledged all.

        Whatever it raises, treat the whole call as not accepted (records that did
        reach Kafka will be duplicates when retried, which consumers dedup by event id).

        Raises:
            BackendUnavailableError: Kafka was unreachable or did not acknowledge
                within ``delivery_timeout_s``; the same records may succeed later.
            ValidationError: a record was refused for what it is (larger than the
                broker or topic takes, malformed): it will be refused every time. Kafka
                fails the records batched with it too, so retry the others alone.
            BackendError: the topic was refused to this producer (authorization,
                invalid topic, unsupported settings) until an operator acts.
        """
        if not records:
            return
        producer = self._client()
        delivery = _Delivery(len(records))
        deadline = time.monotonic() + self.delivery_timeout_s + 1.0
        queued = 0
        try:
            for key, value in records:
                while True:
                    try:
                        producer.produce(topic, value, key, on_delivery=delivery)
                        queued += 1
                        break
                    except BufferError:
                        # Local queue full: serve delivery reports to make room.
                        if time.monotonic() > deadline:
                            raise BackendUnavailableError(
                                f"Kafka producer queue stayed full producing to {topic!r}"
                            ) from None
                        producer.poll(0.05)
            while delivery.pending > 0 and delivery.error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                producer.flush(min(left, 0.5))
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if err is not None and _is_permanent(err):
                # refused before it was sent (e.g. larger than message.max.bytes)
                raise _refused(topic, err, f"record {queued + 1} of {len(records)}") from exc
            raise BackendUnavailableError(f"Kafka refused records for {topic!r}: {exc}") from exc
        if delivery.refusal is not None:
            raise _refused(topic, delivery.refusal, f"{delivery.refused} of {len(records)} records")
        if delivery.error is not None:
            raise BackendUnavailableError(
                f"Kafka did not acknowledge records for {topic!r}: {delivery.error.str()}"
            )
        if delivery.pending > 0:
            raise BackendUnavailableError(
                f"Kafka did not acknowledge {delivery.pending} of {len(records)} records "
                f"for {topic!r} within {self.delivery_timeout_s:.1f} s"
            )

    def reachable(self, timeout_s: float = 0.5) -> bool:
        """Whether a broker answers a metadata request within ``timeout_s``."""
        try:
            self._client().list_topics(timeout=timeout_s)
            return True
        except KafkaException:
            return False

    def close(self) -> None:
        """Wait (up to the delivery timeout) for anything in flight, then release."""
        self._producer.flush(self.delivery_timeout_s)


def _records(
    messages: Sequence[Message], positions: dict[tuple[str, int], int] | None = None
) -> list[LogRecord]:
    """The records among consumed ``messages``; ``positions`` (if given) gets the offset
    after each one, per partition.

    Raises:
        BackendError: a message carries a fatal error (the client must be recreated).
    """
    out: list[LogRecord] = []
    for msg in messages:
        err = msg.error()
        if err is not None:
            # Partition EOF, a topic not created yet, a broker going away: the
            # client recovers by itself; only a fatal error is the caller's business.
            if err.fatal():
                raise BackendError(f"fatal Kafka consumer error: {err.str()}")
            if err.code() != KafkaError._PARTITION_EOF:
                log.debug("Kafka consumer: %s", err.str())
            continue
        topic: str = msg.topic()  # type: ignore[assignment]  # set on a message
        partition: int = msg.partition()  # type: ignore[assignment]
        offset: int = msg.offset()  # type: ignore[assignment]
        out.append(LogRecord(topic, partition, offset, msg.key(), msg.value() or b""))
        if positions is not None:
            positions[(topic, partition)] = offset + 1
    return out


@dataclass(frozen=True, slots=True)
class _PartitionOffsets:
    """One partition's offsets in a librdkafka statistics report (negative: unknown)."""

    low: int
    high: int
    committed: int
    consumed: int
    """After the last record handed to the application."""

    def lag(self, earliest: bool) -> int | None:
        """Records after the consumer's position, or None if the end is not known."""
        if self.high < 0:
            return None
        position = self.consumed if self.consumed >= 0 else self.committed
        if position < 0:  # nothing committed by the group: auto.offset.reset decides
            position = self.low if earliest else self.high
        return max(0, self.high - max(position, self.low))


def _partition_offsets(
    stats: dict[str, Any], topics: Sequence[str]
) -> dict[tuple[str, int], _PartitionOffsets]:
    """The offsets of ``topics``' partitions in a librdkafka statistics report
    (``STATISTICS.md``: ``topics.<topic>.partitions.<partition>``)."""
    out: dict[tuple[str, int], _PartitionOffsets] = {}
    for topic in topics:
        partitions = stats.get("topics", {}).get(topic, {}).get("partitions", {})
        for key, part in partitions.items():
            partition = int(key)
            if partition < 0:  # librdkafka's internal "unassigned" partition
                continue
            out[(topic, partition)] = _PartitionOffsets(
                low=int(part.get("lo_offset", -1)),
                high=int(part.get("hi_offset", -1)),
                committed=int(part.get("committed_offset", -1)),
                consumed=int(part.get("app_offset", -1)),
            )
    return out


class KafkaConsumer:
    """A member of consumer group ``group_id`` reading ``topics``, committing by hand.

    Args:
        bootstrap: ``host:port[,host:port]`` of the brokers.
        group_id: the consumer group; its committed offsets say where to resume.
        topics: topics to subscribe to.
        auto_offset_reset: where a group without a committed offset starts,
            ``"earliest"`` or ``"latest"``.
        timeout_s: bound on broker round trips of :meth:`rewind` and :meth:`lag`.
            (:meth:`commit` is synchronous and waits for as long as no group
            coordinator answers: ``mlrec serve stream`` bounds its shutdown itself.)
        stats_interval_s: how often librdkafka reports the partitions' offsets, which
            :meth:`cached_lag` reads (0 disables them, and ``cached_lag`` knows nothing).
        config: extra librdkafka settings (they win over the arguments).

    Not thread-safe: one thread polls, applies and commits (as Kafka's model wants).
    That thread also measures the lag, with :meth:`cached_lag` (no round trip);
    :meth:`lag` asks the broker.
    """

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        *,
        auto_offset_reset: str = "earliest",
        timeout_s: float = 10.0,
        stats_interval_s: float = 1.0,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.group_id = group_id
        self.topics = list(topics)
        self.timeout_s = timeout_s
        self._earliest = auto_offset_reset == "earliest"
        # Partitions assigned to this member (kept by the rebalance callbacks), and
        # the offsets librdkafka last reported for each partition of ``topics``.
        self._assigned: set[tuple[str, int]] = set()
        self._joined = False  # an assignment (perhaps empty) was received
        self._offsets: dict[tuple[str, int], _PartitionOffsets] = {}
        cfg: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "auto.offset.reset": auto_offset_reset,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "error_cb": self._on_error,
            "logger": rdkafka_log,
            # Prefetch enough that a batch poll rarely waits on the network.
            "fetch.min.bytes": 1,
            "queued.min.messages": 100_000,
            # Offsets for cached_lag, delivered to stats_cb inside poll: the lag is
            # known without a round trip of its own.
            "statistics.interval.ms": round(stats_interval_s * 1000),
            "stats_cb": self._on_stats,
        }
        cfg.update(config or {})
        self._consumer = Consumer(cfg)
        # Next offset to commit per (topic, partition): after the last record polled.
        self._pending: dict[tuple[str, int], int] = {}
        self._fatal: KafkaError | None = None
        self._consumer.subscribe(
            self.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
        log.debug("Kafka consumer error: %s", err)

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        # confluent-kafka assigns them after this returns (incrementally or not)
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._joined = True

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        # Uncommitted records of a partition we lose are redelivered to its new owner.
        for tp in partitions:
            self._pending.pop((tp.topic, tp.partition), None)
            self._assigned.discard((tp.topic, tp.partition))
            self._offsets.pop((tp.topic, tp.partition), None)  # stale for its next owner

    def _on_stats(self, stats_json: str) -> None:
        try:
            self._offsets = _partition_offsets(json.loads(stats_json), self.topics)
        except (ValueError, TypeError, AttributeError):  # lag is best effort
            log.debug("unreadable librdkafka statistics", exc_info=True)

    def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
        """Up to ``max_records`` records after the group's position (may be empty).

        Raises:
            BackendError: the consumer hit a fatal error and must be recreated.
        """
        if self._fatal is not None:
            raise BackendError(f"fatal Kafka consumer error: {self._fatal.str()}")
        try:
            messages = self._consumer.consume(max_records, timeout_seconds)
        except KafkaException as exc:
            raise BackendUnavailableError(f"Kafka consume failed: {exc}") from exc
        return _records(messages, self._pending)

    def commit(self, through: Sequence[LogRecord] | None = None) -> None:
        """Synchronously commit the position after every record returned by :meth:`poll`
        (or only after the records in ``through``).

        Only partitions still assigned to this member are committed: a partition
        revoked since those records were polled (a rebalance served while they were
        being applied) is another member's now, which reads on from the group's offset
        and commits further; committing our older position after that would move the
        group back, and a restart would redeliver far more than a batch. Its records
        are redelivered to its new owner instead (who recognises them by event id).

        Raises:
            BackendUnavailableError: the group coordinator did not take the commit.
        """
        positions = self._pending if through is None else positions_after(through)
        positions = {tp: offset for tp, offset in positions.items() if tp in self._assigned}
        if not positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise BackendUnavailableError(f"Kafka commit failed: {exc}") from exc
        for partition, offset in list(positions.items()):
            if self._pending.get(partition, -1) <= offset:
                self._pending.pop(partition, None)

    def rewind(self) -> None:
        """Seek every assigned partition back to its committed offset (where the group
        committed nothing: its start, or its end with ``auto_offset_reset="latest"``).

        Raises:
            BackendUnavailableError: the committed offsets could not be read, for all
                partitions or for one (``committed()`` reports a partition's error on
                the partition, with no offset: seeking to the reset position then
                would replay, or skip, the whole partition). Nothing is sought then;
                retry the rewind before polling again.
        """
        self._pending.clear()
        assigned = self._consumer.assignment()
        if not assigned:
            return
        try:
            committed = self._consumer.committed(assigned, timeout=self.timeout_s)
            failed = [
                f"{tp.topic}[{tp.partition}]: {tp.error.str()}"
                for tp in committed
                if tp.error is not None
            ]
            if failed:
                raise BackendUnavailableError(
                    f"Kafka rewind failed: no committed offset for {', '.join(failed)}"
                )
            for tp in committed:
                if tp.offset < 0:  # the group has not committed here yet
                    tp.offset = OFFSET_BEGINNING if self._earliest else OFFSET_END
                self._consumer.seek(tp)
        except KafkaException as exc:
            raise BackendUnavailableError(f"Kafka rewind failed: {exc}") from exc

    def cached_lag(self) -> int | None:
        """Records not yet consumed in the assigned partitions, from the offsets
        librdkafka last reported (every ``stats_interval_s``, during :meth:`poll`).

        No broker round trip: the high watermarks are those of the latest fetch
        responses (a caught-up consumer's fetches return every ``fetch.wait.max.ms``),
        so the figure is at most about ``stats_interval_s`` old. A partition no record
        was polled from since it was assigned counts from the group's committed
        offset, which librdkafka fetched itself on assignment. Call it from the
        thread that polls (:class:`KafkaConsumer` is not thread-safe).

        Returns:
            the lag, or None while it is unknown (before the group gave this member
            its first assignment, before the first report after an assignment, or
            with statistics disabled). A member the group gave no partition has none.
        """
        if not self._assigned:
            # before the first assignment, 0 would tell a lagging group it caught up
            return 0 if self._joined else None
        total = 0
        for tp in self._assigned:
            offsets = self._offsets.get(tp)
            if offsets is None:
                return None
            lag = offsets.lag(self._earliest)
            if lag is None:
                return None
            total += lag
        return total

    def lag(self) -> int:
        """High watermark minus position, summed over the assigned partitions.

        Asks the broker (a round trip per partition, bounded by ``timeout_s``): keep it
        off the polling loop, where :meth:`cached_lag` answers without one.
        """
        assigned = self._consumer.assignment()
        if not assigned:
            return 0
        try:
            positions = self._consumer.position(assigned)
            unknown = [tp for tp in positions if tp.offset < 0]
            committed = (
                {
                    (tp.topic, tp.partition): tp.offset
                    for tp in self._consumer.committed(unknown, timeout=self.timeout_s)
                }
                if unknown
                else {}
            )
            total = 0
            for tp in positions:
                # a broker round trip per partition: callers keep this off hot loops
                low, high = self._consumer.get_watermark_offsets(
                    tp, timeout=self.timeout_s, cached=False
                )
                position = tp.offset
                if position < 0:
                    position = committed.get((tp.topic, tp.partition), -1)
                if position < 0:
                    position = low if self._earliest else high
                total += max(0, high - max(position, low))
            return total
        except KafkaException as exc:
            raise BackendUnavailableError(f"Kafka lag query failed: {exc}") from exc

    def close(self) -> None:
        """Leave the group (uncommitted records go to the partitions' next owners)."""
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError):
            log.debug("closing a Kafka consumer failed", exc_info=True)


FOLLOWER_GROUP = "mlrec.follower"
"""The ``group.id`` librdkafka requires of a :class:`KafkaFollower`; it never joins
this group nor commits to it, so the broker keeps nothing under it."""


class KafkaFollower:
    """Follows ``topics`` from their end, in no consumer group (see
    :class:`~mlrec.events.log.EventFollower`).

    Partitions are assigned by hand: those in the first metadata answer start at their
    end; any that appear later (a topic created or grown after the follower opened)
    start at their beginning, since all their records are newer. Metadata is looked
    up again every ``refresh_s`` (and at each poll until a first answer came).

    Args:
        bootstrap: ``host:port[,host:port]`` of the brokers.
        topics: topics to follow.
        refresh_s: how often to look for new partitions.
        timeout_s: bound on a metadata lookup.
        config: extra librdkafka settings (they win over the defaults).
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        *,
        refresh_s: float = 30.0,
        timeout_s: float = 2.0,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.topics = list(topics)
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        cfg: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": FOLLOWER_GROUP,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "error_cb": self._on_error,
            "logger": rdkafka_log,
        }
        cfg.update(config or {})
        self._consumer = Consumer(cfg)
        self._fatal: KafkaError | None = None
        self._assigned: set[tuple[str, int]] = set()
        self._answered = False
        self._next_lookup = 0.0
        self._look_up_partitions()

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
        log.debug("Kafka follower error: %s", err)

    def _look_up_partitions(self) -> None:
        try:
            metadata = self._consumer.list_topics(timeout=self.timeout_s)
        except KafkaException:
            log.debug("Kafka follower: metadata lookup failed", exc_info=True)
            return  # tried again at the next poll
        new = [
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in self.topics
            if topic in metadata.topics and metadata.topics[topic].error is None
            for partition in metadata.topics[topic].partitions
            if (topic, partition) not in self._assigned
        ]
        if not self._answered:
            try:
                for tp in new:  # the end now, not when fetching starts: nothing after is missed
                    tp.offset = self._consumer.get_watermark_offsets(
                        tp, timeout=self.timeout_s, cached=False
                    )[1]
            except KafkaException:
                log.debug("Kafka follower: end offsets lookup failed", exc_info=True)
                return
        self._answered = True
        self._next_lookup = time.monotonic() + self.refresh_s
        if new:
            self._consumer.incremental_assign(new)
            self._assigned.update((tp.topic, tp.partition) for tp in new)

    def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
        """Up to ``max_records`` records appended since the last poll (may be empty).

        Raises:
            BackendError: the client hit a fatal error and must be recreated.
        """
        if self._fatal is not None:
            raise BackendError(f"fatal Kafka consumer error: {self._fatal.str()}")
        if time.monotonic() >= self._next_lookup:
            self._look_up_partitions()
        if not self._assigned:
            time.sleep(timeout_seconds)
            return []
        try:
            return _records(self._consumer.consume(max_records, timeout_seconds))
        except KafkaException as exc:
            raise BackendUnavailableError(f"Kafka consume failed: {exc}") from exc

    def close(self) -> None:
        """Release the client."""
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError):
            log.debug("closing a Kafka follower failed", exc_info=True)


def _await_leaders(admin: AdminClient, topics: Mapping[str, int], deadline: float) -> None:
    """Wait until every partition of ``topics`` answers an offsets request.

    A created or grown partition is unusable for a moment, even after metadata
    names its leader (reads of its offsets answer "not leader"), so callers that
    read right after ``ensure_topics`` would fail at random without this.
    """
    while True:
        remaining = max(deadline - time.monotonic(), 0.1)
        metadata = admin.list_topics(timeout=remaining)
        waiting: set[str] = {
            topic
            for topic, count in topics.items()
            if topic not in metadata.topics or len(metadata.topics[topic].partitions) < count
        }
        probes = {
            TopicPartition(topic, partition): OffsetSpec.latest()  # type: ignore[no-untyped-call]
            for topic in set(topics) - waiting
            for partition in metadata.topics[topic].partitions
        }
        if probes:
            for partition, future in admin.list_offsets(probes, request_timeout=remaining).items():
                try:
                    future.result()
                except KafkaException:
                    waiting.add(partition.topic)
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise BackendUnavailableError(f"Kafka topics {sorted(waiting)} are not ready to serve")
        time.sleep(0.05)


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    replication: int = 1,
    timeout_s: float = 30.0,
) -> None:
    """Create ``topics`` (name -> partition count) unless they exist; idempotent.

    An existing topic with fewer partitions is grown to the count (Kafka cannot
    shrink a topic; a larger one is left alone). Note that growing a topic moves
    keys to other partitions for new records.

    Raises:
        BackendUnavailableError: the cluster could not be reached or refused.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": rdkafka_log})  # type: ignore[dict-item]
    try:
        new = [
            NewTopic(t, num_partitions=n, replication_factor=replication) for t, n in topics.items()
        ]
        for topic, future in admin.create_topics(new, operation_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                log.debug("topic %s already exists", topic)
        metadata = admin.list_topics(timeout=timeout_s)
        grow = [
            NewPartitions(t, n)
            for t, n in topics.items()
            if t in metadata.topics and len(metadata.topics[t].partitions) < n
        ]
        if grow:
            for future in admin.create_partitions(grow, operation_timeout=timeout_s).values():
                future.result(timeout=timeout_s)
            for grown in grow:
                log.warning(
                    "Kafka topic %s had %d partitions: grown to %d (new records of a key "
                    "may go to another partition than its earlier ones)",
                    grown.topic,
                    len(metadata.topics[grown.topic].partitions),
                    grown.new_total_count,
                )
        _await_leaders(admin, topics, deadline=time.monotonic() + timeout_s)
    except KafkaException as exc:
        raise BackendUnavailableError(
            f"could not create Kafka topics {list(topics)}: {exc}"
        ) from exc
    except Exception as exc:  # futures raise plain exceptions on timeouts
        if isinstance(exc, BackendError):
            raise
        reason = str(exc) or f"no answer from {bootstrap} within {timeout_s:g} s"
        raise BackendUnavailableError(
            f"could not create Kafka topics {list(topics)}: {reason}"
        ) from exc
