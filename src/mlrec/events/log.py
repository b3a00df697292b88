"""The event log protocol: a partitioned, durable, consumer-group log (Kafka's model).

Two ways to read: an :class:`EventConsumer` is a member of a consumer group (the
group shares the work and commits its progress: the stream processor), an
:class:`EventFollower` reads on its own from the end, in no group (a broadcast every
reader must see, such as a model promotion reaching every API replica).

Implementations: ``mlrec.backends.kafka`` (Apache Kafka, production) and
``mlrec.backends.sqlite_log`` (an embedded durable log for the local default). One
contract suite (``tests/contracts/event_log.py``) runs on both.

Topics are named ``mlrec.<entity>.<event>``: ``mlrec.interactions``,
``mlrec.interactions.dlq``, ``mlrec.models.promoted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "DLQ_TOPIC",
    "INTERACTIONS_TOPIC",
    "MODELS_PROMOTED_TOPIC",
    "EventConsumer",
    "EventFollower",
    "EventProducer",
    "LogRecord",
    "positions_after",
]

INTERACTIONS_TOPIC = "mlrec.interactions"
DLQ_TOPIC = "mlrec.interactions.dlq"
MODELS_PROMOTED_TOPIC = "mlrec.models.promoted"


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record read from the log."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def positions_after(records: Sequence[LogRecord]) -> dict[tuple[str, int], int]:
    """``(topic, partition) -> offset`` just past the highest of ``records`` in each
    partition: the position to commit once all of them are processed."""
    positions: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        positions[key] = max(positions.get(key, 0), record.offset + 1)
    return positions


class EventProducer(Protocol):
    """Appends records to topics durably."""

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Append ``(key, value)`` records and return only once the log acknowledged all.

        Raises:
            BackendUnavailableError: the log could not acknowledge in time; none of the
                records should be considered accepted.
        """
        ...

    def reachable(self) -> bool:
        """Whether the log answers a quick probe now (well under a second); never raises."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


class EventConsumer(Protocol):
    """Reads topics as a member of a consumer group, committing offsets explicitly."""

    def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
        """Up to ``max_records`` records after the group's position (may be empty)."""
        ...

    def commit(self, through: Sequence[LogRecord] | None = None) -> None:
        """Commit the position after every record returned by :meth:`poll` so far, or
        only after the records in ``through`` (the highest offset of each of their
        partitions), leaving later polled records uncommitted."""
        ...

    def rewind(self) -> None:
        """Move the position back to the last committed offsets (after a failed batch),
        so the uncommitted records are polled again."""
        ...

    def lag(self) -> int:
        """Records in the subscribed topics not yet consumed by this group (best effort)."""
        ...

    def close(self) -> None:
        """Leave the group and release resources (uncommitted records will be redelivered)."""
        ...


class EventFollower(Protocol):
    """Follows topics from their end, outside any consumer group.

    Every follower sees every record appended after it was opened (a record appended
    before is never delivered; neither is one appended while it was closed). It commits
    nothing and joins no group, so opening one per process leaves nothing behind on
    the log, however many processes come and go.
    """

    def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
        """Up to ``max_records`` records appended since the last poll (may be empty)."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...
