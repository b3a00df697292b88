"""Real-time features kept up to date by the stream processor, one event at a time.

* ``user_recent``: per user, the most recent items with timestamps (bounded list);
  this is the live history the API scores with ``recommend_from_history``.
* ``user_activity``: per user, interaction counts in hourly and daily buckets, summed
  into windows (1 h, 24 h, 7 d) on read; old buckets are dropped on write.
* ``item_popularity``: per item, a time-decayed interaction score, ranked.

All writes are atomic per entity in the backend and refresh TTLs, so memory stays
bounded by activity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from mlrec.core.clock import Clock, SystemClock
from mlrec.core.errors import ValidationError
from mlrec.features.definitions import check_entity_id
from mlrec.features.online_store import (
    AtomicWrites,
    CounterUpdate,
    InteractionBatchWriter,
    OnlineStore,
    RealtimePlan,
    RecentEntry,
)

__all__ = ["Interaction", "PreparedInteractions", "RealtimeConfig", "RealtimeFeatures"]

HOUR = 3600.0
DAY = 86400.0
WINDOWS = {"1h": (HOUR, "h"), "24h": (DAY, "h"), "7d": (7 * DAY, "d")}


class Interaction(NamedTuple):
    """One user-item interaction as the feature store needs it.

    (A named tuple: the stream processor builds one per event, and a tuple is several
    times cheaper to create than a frozen dataclass.)
    """

    user_id: str
    item_id: str
    timestamp: float
    weight: float = 1.0
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class PreparedInteractions:
    """A validated batch, encoded for the store when it applies batches itself."""

    interactions: Sequence[Interaction]
    encoded: object | None = None


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """Sizes and lifetimes of the real-time features.

    Attributes:
        recent_items: how many recent items are kept per user.
        dedup_window: how many recent event ids are remembered per user to apply
            each event once (events of one user arrive in order on one partition, so
            a redelivered event is among that user's latest ones). A redelivery is
            recognised only if it is no larger than the window, so the window must
            cover the largest one the services can cause: the stream processor
            re-sends up to two polled batches (``2 * max_batch``, see
            :mod:`mlrec.events.processor`, which refuses a larger ``max_batch``), and
            the API's spool re-sends at most one replay call (5000 records) when one
            fails part-way. The default covers ``mlrec serve stream`` (``max_batch``
            5000, so 10 000) and the embedded processor (1000). The stores keep the
            ids with the newest event timestamps, so the guarantee holds for a user's
            events in timestamp order (an event older than the user's latest
            ``dedup_window`` drops out at once). Memory: a user's id set holds
            min(the user's events within ``user_ttl_seconds``, ``dedup_window``) ids
            of up to 128 characters; only heavy users reach the window.
        user_ttl_seconds: a user's real-time features expire after this long idle.
        popularity_half_life_seconds: an interaction's weight halves after this long.
        popularity_ttl_seconds: the popularity ranking expires after this long idle.
        max_popular_items: how many items the popularity ranking keeps.
    """

    recent_items: int = 50
    dedup_window: int = 10_000
    user_ttl_seconds: float = 30 * DAY
    popularity_half_life_seconds: float = DAY
    popularity_ttl_seconds: float = 30 * DAY
    max_popular_items: int = 100_000


class RealtimeFeatures:
    """Writes interactions into the real-time views and reads them back.

    Args:
        online: the online store.
        config: sizes and lifetimes.
        clock: time source for windows and decay.
        prefix: view-name prefix, to keep several deployments (or tests) apart.
    """

    def __init__(
        self,
        online: OnlineStore,
        config: RealtimeConfig | None = None,
        clock: Clock | None = None,
        prefix: str = "",
    ) -> None:
        self.online = online
        self.config = config or RealtimeConfig()
        self.clock = clock or SystemClock()
        self.recent_view = f"{prefix}user_recent"
        self.activity_view = f"{prefix}user_activity"
        self.popularity_view = f"{prefix}item_popularity"
        self.seen_view = f"{prefix}user_seen_events"

    def _unseen(self, interactions: Sequence[Interaction]) -> list[Interaction]:
        pairs = [(i.user_id, i.event_id) for i in interactions if i.event_id is not None]
        if not pairs:
            return list(interactions)
        seen = {
            pair
            for pair, found in zip(
                pairs, self.online.contains_recent(self.seen_view, pairs), strict=True
            )
            if found
        }
        fresh: list[Interaction] = []
        for interaction in interactions:
            if interaction.event_id is None:
                fresh.append(interaction)
                continue
            key = (interaction.user_id, interaction.event_id)
            if key not in seen:
                fresh.append(interaction)
                seen.add(key)
        return fresh

    def record(self, interactions: Sequence[Interaction], validated: bool = False) -> int:
        """Apply a batch of interactions to every real-time view, each event id once.

        Interactions carrying an ``event_id`` already applied (within the user's
        ``dedup_window`` latest events) are skipped, so redelivery after a crash or a
        client retry does not count twice. A store that applies a batch in one call
        (Redis) or one transaction (SQLite, see
        :class:`~mlrec.features.online_store.AtomicWrites`) applies it whole or not at
        all. Elsewhere the ids are remembered after the updates, so a crash in between
        can only make a redelivered event count again, never lose it.

        Args:
            interactions: the batch.
            validated: the ids were already checked (e.g. parsed as events): skip it.

        Returns:
            how many interactions were applied.
        """
        return self.apply(self.prepare(interactions, validated))

    def prepare(
        self, interactions: Sequence[Interaction], validated: bool = False
    ) -> PreparedInteractions:
        """The CPU half of :meth:`record`: validate, and encode the batch if the store
        applies batches itself (see :meth:`apply`). No I/O."""
        for interaction in interactions:
            if not validated:
                check_entity_id(interaction.user_id)
                check_entity_id(interaction.item_id)
            if interaction.weight <= 0:
                raise ValidationError(f"interaction weight must be positive: {interaction}")
        if isinstance(self.online, InteractionBatchWriter):
            encoded = self.online.prepare_interactions(interactions, self.plan())
            return PreparedInteractions((), encoded)
        return PreparedInteractions(interactions)

    def apply(self, prepared: PreparedInteractions) -> int:
        """The I/O half of :meth:`record`: apply a prepared batch; how many were new."""
        if prepared.encoded is not None and isinstance(self.online, InteractionBatchWriter):
            return self.online.apply_prepared(prepared.encoded)
        return self._apply_generic(prepared.interactions)

    def _apply_generic(self, interactions: Sequence[Interaction]) -> int:
        if isinstance(self.online, AtomicWrites):
            # the ids are remembered last: outside one transaction, a crash before
            # that would make the redelivered events count twice
            with self.online.atomically():
                return self._apply_each_update(interactions)
        return self._apply_each_update(interactions)

    def _apply_each_update(self, interactions: Sequence[Interaction]) -> int:
        interactions = self._unseen(interactions)
        if not interactions:
            return 0
        cfg = self.config
        # Aggregate the batch first, so the store does one update per user / item
        # rather than one per event (hot items and busy users dominate real streams).
        recent: dict[tuple[str, str], float] = {}
        counters: dict[str, dict[str, float]] = {}
        latest: dict[str, float] = {}
        popularity: dict[str, list[tuple[float, float]]] = {}
        for i in interactions:
            key = (i.user_id, i.item_id)
            recent[key] = max(recent.get(key, i.timestamp), i.timestamp)
            buckets = counters.setdefault(i.user_id, {})
            for bucket in (
                f"h:{int(i.timestamp // HOUR * HOUR)}",
                f"d:{int(i.timestamp // DAY * DAY)}",
            ):
                buckets[bucket] = buckets.get(bucket, 0.0) + 1.0
            latest[i.user_id] = max(latest.get(i.user_id, i.timestamp), i.timestamp)
            popularity.setdefault(i.item_id, []).append((i.weight, i.timestamp))
        self.online.push_recent(
            self.recent_view,
            [RecentEntry(user, item, ts) for (user, item), ts in recent.items()],
            cfg.recent_items,
            cfg.user_ttl_seconds,
        )
        self.online.increment(
            self.activity_view,
            [CounterUpdate(user, deltas, latest[user]) for user, deltas in counters.items()],
            cfg.user_ttl_seconds,
            drop_before=self._drop_before(),
        )
        half_life = cfg.popularity_half_life_seconds
        decayed = []
        for item, contributions in popularity.items():
            # Σ w·2^((t - t_ref)/h) at t_ref = the newest: the same decayed sum in one entry
            t_ref = max(t for _, t in contributions)
            amount = sum(w * 2.0 ** ((t - t_ref) / half_life) for w, t in contributions)
            decayed.append((item, amount, t_ref))
        self.online.add_decayed(
            self.popularity_view,
            decayed,
            half_life,
            cfg.popularity_ttl_seconds,
            cfg.max_popular_items,
        )
        ids = [RecentEntry(i.user_id, i.event_id, i.timestamp) for i in interactions if i.event_id]
        if ids:
            self.online.push_recent(self.seen_view, ids, cfg.dedup_window, cfg.user_ttl_seconds)
        return len(interactions)

    def _drop_before(self) -> dict[str, float]:
        # windowed counters older than the longest window that reads them
        now = self.clock.now()
        return {"h": now - DAY - HOUR, "d": now - 8 * DAY}

    def plan(self) -> RealtimePlan:
        """The views and limits an :class:`InteractionBatchWriter` applies a batch with."""
        cfg = self.config
        return RealtimePlan(
            recent_view=self.recent_view,
            seen_view=self.seen_view,
            activity_view=self.activity_view,
            popularity_view=self.popularity_view,
            recent_items=cfg.recent_items,
            dedup_window=cfg.dedup_window,
            user_ttl_seconds=cfg.user_ttl_seconds,
            drop_before=self._drop_before(),
            half_life_seconds=cfg.popularity_half_life_seconds,
            popularity_ttl_seconds=cfg.popularity_ttl_seconds,
            max_popular_items=cfg.max_popular_items,
        )

    def recent_items(self, user_id: str, limit: int | None = None) -> list[tuple[str, float]]:
        """The user's recent items with timestamps, newest first."""
        check_entity_id(user_id)
        return self.online.read_recent(
            self.recent_view, [user_id], limit or self.config.recent_items
        )[0]

    def recent_items_many(
        self, user_ids: Sequence[str], limit: int | None = None
    ) -> list[list[tuple[str, float]]]:
        """:meth:`recent_items` for several users in one round trip."""
        for user_id in user_ids:
            check_entity_id(user_id)
        return self.online.read_recent(
            self.recent_view, user_ids, limit or self.config.recent_items
        )

    def activity(self, user_id: str) -> dict[str, int]:
        """Interaction counts of the user over the last 1 h, 24 h and 7 d.

        Hour and day windows are bucket-aligned: a window covers every bucket that
        overlaps it (ends after the window's start), so counts may include up to one
        bucket more than exact.
        """
        check_entity_id(user_id)
        counters = self.online.read_counters(self.activity_view, [user_id])[0]
        now = self.clock.now()
        out: dict[str, int] = {}
        for window, (length, prefix) in WINDOWS.items():
            total = 0.0
            for name, count in counters.items():
                kind, _, start = name.partition(":")
                bucket = HOUR if kind == "h" else DAY
                if kind == prefix and float(start) + bucket > now - length:
                    total += count
            out[window] = int(total)
        return out

    def popular_items(self, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` items with the highest time-decayed popularity, with scores now."""
        if n < 1:
            raise ValidationError(f"n must be at least 1, got {n}")
        return self.online.top_decayed(
            self.popularity_view, n, self.clock.now(), self.config.popularity_half_life_seconds
        )
