"""The online store protocol: the small set of operations a feature backend provides.

Backends (``mlrec.backends``): ``memory://`` (tests), ``sqlite:///path`` (the embedded
local default, safe across processes), ``redis://`` (production). One contract test
suite (``tests/contracts/online_store.py``) runs against each.

Everything is keyed by ``(view, entity_id)``. Values are opaque bytes (see
:mod:`mlrec.features.codec`); the store records when each entity was last written.

Rules every implementation keeps:

* A write of one entity is atomic (all of its fields or none), merges its fields
  into the entity, and refreshes the entity's expiry to *now* + ``ttl`` (so a
  backfilled row is kept for a full TTL; the domain's staleness rule still refuses
  to serve it once ``written_at`` is older than the TTL). ``written_at`` becomes the
  later of the stored and the new one.
* Nothing is returned for an entity whose expiry has passed (the domain layer adds
  the stricter rule that a value older than the view's current TTL is stale).
* ``max_entities`` bounds the view: beyond it, the least recently written
  entities are removed.
* Unreachable servers raise :class:`~mlrec.core.errors.BackendUnavailableError`
  promptly (short timeouts), never hang.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "AtomicWrites",
    "CounterUpdate",
    "InteractionBatchWriter",
    "OnlineStore",
    "RealtimePlan",
    "RecentEntry",
    "RowWrite",
    "StoredRow",
    "ViewStats",
    "bucket_start",
]


def bucket_start(name: str) -> tuple[str, float] | None:
    """``("h", 1700000000.0)`` for a windowed counter named ``h:1700000000``, else None."""
    prefix, sep, start = name.rpartition(":")
    if not sep:
        return None
    try:
        return prefix, float(start)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class RowWrite:
    """The fields of one entity to write, and when they were observed (epoch seconds)."""

    entity_id: str
    values: Mapping[str, bytes]
    written_at: float


@dataclass(frozen=True, slots=True)
class StoredRow:
    """What the store holds for one entity: the requested fields present, and the write time."""

    values: dict[str, bytes]
    written_at: float


@dataclass(frozen=True, slots=True)
class RecentEntry:
    """One member (an item id) to push onto an entity's bounded recent list."""

    entity_id: str
    member: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class CounterUpdate:
    """Add ``deltas`` to named counters of one entity at ``timestamp``."""

    entity_id: str
    deltas: Mapping[str, float]
    timestamp: float


@dataclass(frozen=True, slots=True)
class ViewStats:
    """Size of a view in the online store.

    Attributes:
        entities: number of live entities.
        sampled_bytes: mean bytes per entity over a sample (Redis ``MEMORY USAGE``).
        ttl_remaining: remaining TTL in seconds of the sampled entities.
        write_ages: seconds since the last write of the sampled entities.
    """

    entities: int
    sampled_bytes: float
    ttl_remaining: list[float] = field(default_factory=list)
    write_ages: list[float] = field(default_factory=list)


@runtime_checkable
class OnlineStore(Protocol):
    """Low-latency key-value storage of the latest feature values."""

    def write_rows(
        self, view: str, rows: Sequence[RowWrite], ttl_seconds: float, max_entities: int | None
    ) -> int:
        """Write rows (each entity atomically), refresh their TTL, enforce ``max_entities``.

        A row older than the entity's stored one is skipped (the last write by time
        wins). Returns how many rows were written, skipped ones not counted.
        """
        ...

    def read_rows(
        self, view: str, entity_ids: Sequence[str], fields: Sequence[str]
    ) -> list[StoredRow | None]:
        """For each entity, its requested fields and last write time (None if absent/expired)."""
        ...

    def delete_entities(self, view: str, entity_ids: Sequence[str]) -> int:
        """Remove entities; returns how many existed."""
        ...

    def apply_ttl(self, view: str, ttl_seconds: float) -> int:
        """Re-apply a (changed) TTL to every live entity: expiry = ``written_at + ttl``.

        Entities already past the new TTL are removed. Returns how many were touched.
        """
        ...

    def view_stats(self, view: str, sample: int = 100) -> ViewStats:
        """Entity count and a sampled view of sizes, TTLs and write ages."""
        ...

    def push_recent(
        self, view: str, entries: Sequence[RecentEntry], max_len: int, ttl_seconds: float
    ) -> None:
        """Add members to each entity's recent list (a member appears once, at its latest
        timestamp), keep only the ``max_len`` newest, refresh the TTL. Atomic per entity."""
        ...

    def read_recent(
        self, view: str, entity_ids: Sequence[str], limit: int
    ) -> list[list[tuple[str, float]]]:
        """Each entity's recent members with timestamps, newest first, at most ``limit``."""
        ...

    def contains_recent(self, view: str, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """For each ``(entity_id, member)``, whether the member is on the entity's recent
        list (one round trip for the whole batch: the stream processor's dedup check)."""
        ...

    def increment(
        self,
        view: str,
        updates: Sequence[CounterUpdate],
        ttl_seconds: float,
        drop_before: Mapping[str, float] | None = None,
    ) -> None:
        """Atomically add to counters of each entity and refresh its TTL.

        Args:
            drop_before: counters are named ``<prefix>:<bucket start>``; for each prefix
                given, counters with a bucket start below the value are deleted in the
                same operation (this keeps windowed counters bounded). An implementation
                may defer the deletion until the entity next gets a new counter, so
                readers still filter buckets by their start.
        """
        ...

    def read_counters(self, view: str, entity_ids: Sequence[str]) -> list[dict[str, float]]:
        """All counters of each entity (empty dict if none)."""
        ...

    def add_decayed(
        self,
        view: str,
        scores: Sequence[tuple[str, float, float]],
        half_life_seconds: float,
        ttl_seconds: float,
        max_members: int = 100_000,
    ) -> None:
        """Add ``(member, amount, timestamp)`` to exponentially time-decayed scores.

        Scores are kept in log space (``log Σ amount·2^(t/half_life)``) so that their order
        is the order of the decayed values at any time, without rewriting them. Beyond
        ``max_members`` the lowest-scored members are dropped.
        """
        ...

    def top_decayed(
        self, view: str, n: int, now: float, half_life_seconds: float
    ) -> list[tuple[str, float]]:
        """The ``n`` members with the highest decayed score, with their value at ``now``."""
        ...

    def ping(self) -> bool:
        """True if the store answers (never raises)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class RealtimePlan:
    """Where and how interactions update the real-time views (see ``features.realtime``).

    Attributes:
        recent_view, seen_view, activity_view, popularity_view: view names.
        recent_items: members kept per user in ``recent_view``.
        dedup_window: event ids kept per user in ``seen_view``.
        user_ttl_seconds: TTL of the per-user views.
        drop_before: windowed-counter prefix -> bucket starts older than this are dropped.
        half_life_seconds, popularity_ttl_seconds, max_popular_items: ``add_decayed``'s.
    """

    recent_view: str
    seen_view: str
    activity_view: str
    popularity_view: str
    recent_items: int
    dedup_window: int
    user_ttl_seconds: float
    drop_before: Mapping[str, float]
    half_life_seconds: float
    popularity_ttl_seconds: float
    max_popular_items: int


@runtime_checkable
class AtomicWrites(Protocol):
    """An online store that can make several calls one transaction.

    Optional: :class:`~mlrec.features.realtime.RealtimeFeatures` applies each batch
    inside :meth:`atomically` when the store provides it, so a batch that fails part
    way (a killed process, a full disk) leaves nothing behind, and its redelivery
    counts once. Stores that apply a batch in one call (:class:`InteractionBatchWriter`)
    or keep nothing across a crash (in memory) do not need it.
    """

    def atomically(self) -> AbstractContextManager[None]:
        """Writes made by this thread inside the block commit together or not at all;
        reads inside it see them. Blocks nest (the outermost one commits)."""
        ...


@runtime_checkable
class InteractionBatchWriter(Protocol):
    """An online store that applies a whole batch of interactions in one server call,
    in two halves: encoding (CPU) and applying (I/O), so a caller can prepare the next
    batch while the previous one is being applied.

    Optional: :class:`~mlrec.features.realtime.RealtimeFeatures` uses it when the store
    provides it, and otherwise composes the same updates from the
    :class:`OnlineStore` primitives; the results must be the same (a test compares
    them). Each interaction is ``(user_id, item_id, timestamp, weight, event_id)``.
    """

    def prepare_interactions(
        self,
        interactions: Sequence[tuple[str, str, float, float, str | None]],
        plan: RealtimePlan,
    ) -> object:
        """Encode a batch for :meth:`apply_prepared` (no I/O)."""
        ...

    def apply_prepared(self, prepared: object) -> int:
        """Apply what :meth:`prepare_interactions` returned: the interactions not
        applied before (by ``(user, event_id)`` in the user's dedup window, or earlier
        in this batch). Returns how many were applied."""
        ...
