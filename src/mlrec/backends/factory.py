"""Pick a backend implementation from a URL, as Gorse picks its cache by prefix.

| URL                      | model / feature registry | online store          |
|--------------------------|--------------------------|-----------------------|
| ``memory://``            | in-process dicts         | in-process dicts      |
| ``sqlite:///path``       | SQLite (SQLAlchemy)      | SQLite file (WAL)     |
| ``postgresql://...``     | PostgreSQL (SQLAlchemy)  | n/a                   |
| ``redis://host:port/db`` | n/a                      | Redis hashes + Lua    |

Implementations are imported when first opened: a command that never touches SQL
or Kafka does not pay for importing SQLAlchemy, Alembic or librdkafka.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlrec.core.errors import ConfigurationError

if TYPE_CHECKING:
    from mlrec.backends.sqlite_log import SqliteEventLog
    from mlrec.core.clock import Clock
    from mlrec.events.log import EventConsumer, EventFollower, EventProducer
    from mlrec.features.online_store import OnlineStore
    from mlrec.features.registry import FeatureRegistry
    from mlrec.models.artifact_store import ArtifactStore
    from mlrec.models.registry import ModelRegistry

__all__ = [
    "EventLog",
    "open_artifact_store",
    "open_event_log",
    "open_feature_registry",
    "open_model_registry",
    "open_online_store",
    "upgrade_metadata",
]


def _sql(url: str, migrate: bool) -> bool:
    if url.startswith(("sqlite:", "postgres")):
        if migrate:
            from mlrec.backends.sql.migrate import upgrade_database

            upgrade_database(url)
        return True
    return False


def upgrade_metadata(url: str) -> None:
    """Bring the schema of the metadata database at ``url`` up to date (idempotent;
    nothing to do for ``memory://``).

    Raises:
        BackendUnavailableError: the database cannot be reached.
        BackendError: its schema cannot be brought up to date.
    """
    _sql(url, migrate=True)


def open_model_registry(url: str, migrate: bool = True) -> ModelRegistry:
    """The model registry at ``url``: ``memory://``, ``sqlite:///path`` or ``postgresql://``.

    Args:
        url: where the metadata lives.
        migrate: bring the schema up to date first (idempotent).
    """
    if url.startswith("memory://"):
        from mlrec.backends.memory import InMemoryModelRegistry

        return InMemoryModelRegistry()
    if _sql(url, migrate):
        from mlrec.backends.sql.registry import SqlModelRegistry

        return SqlModelRegistry(url)
    raise ConfigurationError(
        f"unsupported registry URL {url!r}: use memory://, sqlite:/// or postgresql://"
    )


def open_artifact_store(url: str, migrate: bool = True) -> ArtifactStore:
    """Model artifacts in the metadata DB at ``url`` (SQLite or PostgreSQL)."""
    if _sql(url, migrate):
        from mlrec.backends.sql.artifact_store import SqlArtifactStore

        return SqlArtifactStore(url)
    raise ConfigurationError(
        f"unsupported artifact store URL {url!r}: use sqlite:/// or postgresql://"
    )


def open_feature_registry(url: str, migrate: bool = True) -> FeatureRegistry:
    """The feature registry at ``url`` (same URLs as :func:`open_model_registry`)."""
    if url.startswith("memory://"):
        from mlrec.backends.memory import InMemoryFeatureRegistry

        return InMemoryFeatureRegistry()
    if _sql(url, migrate):
        from mlrec.backends.sql.feature_registry import SqlFeatureRegistry

        return SqlFeatureRegistry(url)
    raise ConfigurationError(
        f"unsupported registry URL {url!r}: use memory://, sqlite:/// or postgresql://"
    )


def open_online_store(
    url: str, clock: Clock | None = None, redis_timeout_s: float | None = None
) -> OnlineStore:
    """The online feature store at ``url``: ``memory://``, ``sqlite:///path`` or ``redis://``.

    Args:
        url: where the features live.
        clock: time source for TTLs (tests).
        redis_timeout_s: Redis only: the timeout of each wait for the server (a
            pooled connection, connecting, each reply) before a call fails as
            unavailable; the store's default when None.
    """
    if url.startswith("memory://"):
        from mlrec.backends.memory_features import InMemoryOnlineStore

        return InMemoryOnlineStore(clock)
    if url.startswith("sqlite:///"):
        from mlrec.backends.sqlite_features import SqliteOnlineStore

        return SqliteOnlineStore(url.removeprefix("sqlite:///"), clock=clock)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from mlrec.backends.redis_features import RedisOnlineStore

        if redis_timeout_s is None:
            return RedisOnlineStore(url, clock=clock)
        return RedisOnlineStore(url, clock=clock, socket_timeout=redis_timeout_s)
    raise ConfigurationError(
        f"unsupported online store URL {url!r}: use memory://, sqlite:///path or redis://"
    )


class EventLog:
    """The event log the deployment uses: Kafka when configured, else the embedded one.

    Use :func:`open_event_log` to build it. The producers and consumers it hands out
    implement :class:`~mlrec.events.log.EventProducer` and
    :class:`~mlrec.events.log.EventConsumer` on either backend.

    Attributes:
        kafka_bootstrap: ``host:port`` of the Kafka brokers, or None for the
            embedded SQLite log (``embedded_path``).
        embedded_path: the SQLite file of the embedded log.
        partitions: partition count of ``mlrec.interactions`` when
            :meth:`ensure_topics` creates it (the DLQ and promotion topics get 1) and,
            on the embedded log, of any topic first written without it.
    """

    def __init__(self, kafka_bootstrap: str | None, embedded_path: Path, partitions: int = 6):
        self.kafka_bootstrap = kafka_bootstrap
        self.embedded_path = Path(embedded_path)
        self.partitions = partitions
        self._embedded: SqliteEventLog | None = None

    @property
    def is_kafka(self) -> bool:
        """True when the log is a Kafka cluster."""
        return self.kafka_bootstrap is not None

    def _sqlite(self) -> SqliteEventLog:
        if self._embedded is None:
            from mlrec.backends.sqlite_log import SqliteEventLog

            self._embedded = SqliteEventLog(self.embedded_path, partitions=self.partitions)
        return self._embedded

    def ensure_topics(
        self, topics: Mapping[str, int] | None = None, timeout_s: float = 30.0
    ) -> None:
        """Create ``topics`` (name -> partitions; default: interactions, DLQ, promotions).

        ``timeout_s`` bounds each round trip to Kafka."""
        from mlrec.events.log import DLQ_TOPIC, INTERACTIONS_TOPIC, MODELS_PROMOTED_TOPIC

        wanted = dict(
            topics or {INTERACTIONS_TOPIC: self.partitions, DLQ_TOPIC: 1, MODELS_PROMOTED_TOPIC: 1}
        )
        if self.kafka_bootstrap is not None:
            from mlrec.backends.kafka import ensure_topics

            ensure_topics(self.kafka_bootstrap, wanted, timeout_s=timeout_s)
        else:
            self._sqlite().ensure_topics(wanted)

    def producer(self, client_id: str = "mlrec") -> EventProducer:
        """A producer that returns only once the log acknowledged each batch."""
        if self.kafka_bootstrap is not None:
            from mlrec.backends.kafka import KafkaProducer

            return KafkaProducer(self.kafka_bootstrap, client_id=client_id)
        return self._sqlite().producer()

    def consumer(self, group_id: str, topics: Sequence[str]) -> EventConsumer:
        """A consumer in ``group_id`` (on the embedded log: one per group at a time)."""
        if self.kafka_bootstrap is not None:
            from mlrec.backends.kafka import KafkaConsumer

            return KafkaConsumer(self.kafka_bootstrap, group_id, topics)
        return self._sqlite().consumer(group_id, topics)

    def follower(self, topics: Sequence[str]) -> EventFollower:
        """A reader of ``topics`` from their end, in no consumer group: each one sees
        every record appended after it opened, and leaves nothing on the log."""
        if self.kafka_bootstrap is not None:
            from mlrec.backends.kafka import KafkaFollower

            return KafkaFollower(self.kafka_bootstrap, topics)
        return self._sqlite().follower(topics)

    def apply_retention(self, seconds: float) -> int:
        """Delete embedded-log records older than ``seconds``; returns how many. On
        Kafka a no-op: the brokers apply the topics' own ``retention.ms``."""
        if self.kafka_bootstrap is not None:
            return 0
        return self._sqlite().delete_older_than(seconds)


def open_event_log(
    kafka_bootstrap: str | None, embedded_path: Path, partitions: int = 6
) -> EventLog:
    """The event log: Kafka at ``kafka_bootstrap``, or the embedded SQLite log.

    Args:
        kafka_bootstrap: ``host:port[,...]`` (a ``kafka://`` prefix is accepted), or
            None/empty for the embedded durable log, so a local run needs no server.
        embedded_path: the SQLite file of the embedded log.
        partitions: partitions of ``mlrec.interactions`` (the stream processor scales
            out to this many consumers on Kafka).

    Example::

        log = open_event_log(settings.kafka_bootstrap_servers, Path("var/events.db"))
        log.ensure_topics()
        log.producer().produce(INTERACTIONS_TOPIC, [(key, value)])
    """
    if partitions < 1:
        raise ConfigurationError(f"partitions must be at least 1, got {partitions}")
    bootstrap = (kafka_bootstrap or "").strip().removeprefix("kafka://") or None
    return EventLog(bootstrap, embedded_path, partitions)
