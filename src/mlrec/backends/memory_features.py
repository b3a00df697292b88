"""In-memory :class:`~mlrec.features.online_store.OnlineStore` (tests, single process)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mlrec.core.clock import Clock, SystemClock
from mlrec.features.decay import add_log_score, value_at
from mlrec.features.online_store import (
    CounterUpdate,
    RecentEntry,
    RowWrite,
    StoredRow,
    ViewStats,
    bucket_start,
)

__all__ = ["InMemoryOnlineStore"]


@dataclass
class _Entry:
    values: dict[str, bytes] = field(default_factory=dict)
    written_at: float = 0.0
    expires_at: float = 0.0


class InMemoryOnlineStore:
    """Dict-backed online store honouring TTLs against an injectable clock."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._rows: dict[str, dict[str, _Entry]] = {}
        self._recent: dict[str, dict[str, tuple[dict[str, float], float]]] = {}
        self._counters: dict[str, dict[str, tuple[dict[str, float], float]]] = {}
        self._decayed: dict[str, tuple[dict[str, float], float]] = {}
        self._lock = threading.RLock()

    # -- rows ---------------------------------------------------------------------

    def _live(self, view: str) -> dict[str, _Entry]:
        now = self.clock.now()
        rows = self._rows.setdefault(view, {})
        for entity in [e for e, entry in rows.items() if entry.expires_at <= now]:
            del rows[entity]
        return rows

    def write_rows(
        self, view: str, rows: Sequence[RowWrite], ttl_seconds: float, max_entities: int | None
    ) -> int:
        written = 0
        with self._lock:
            live = self._live(view)
            now = self.clock.now()
            for row in rows:
                entry = live.get(row.entity_id)
                if entry is None:
                    entry = live[row.entity_id] = _Entry()
                elif row.written_at < entry.written_at:
                    continue  # older than what is stored: skipped (last write by time wins)
                entry.values.update(row.values)
                entry.written_at = row.written_at
                entry.expires_at = now + ttl_seconds
                written += 1
            if max_entities is not None and len(live) > max_entities:
                # ties by entity id, as Redis orders equal scores (bytewise, which
                # for UTF-8 is code point order)
                by_age = sorted(live, key=lambda e: (live[e].written_at, e))
                for entity in by_age[: len(live) - max_entities]:
                    del live[entity]
        return written

    def read_rows(
        self, view: str, entity_ids: Sequence[str], fields: Sequence[str]
    ) -> list[StoredRow | None]:
        with self._lock:
            rows = self._rows.get(view, {})
            now = self.clock.now()
            out: list[StoredRow | None] = []
            for entity in entity_ids:
                entry = rows.get(entity)
                # expired entries are purged on writes; a read only has to skip them
                if entry is None or entry.expires_at <= now:
                    out.append(None)
                    continue
                values = {f: entry.values[f] for f in fields if f in entry.values}
                out.append(StoredRow(values, entry.written_at))
            return out

    def delete_entities(self, view: str, entity_ids: Sequence[str]) -> int:
        with self._lock:
            live = self._live(view)
            return sum(live.pop(entity, None) is not None for entity in entity_ids)

    def apply_ttl(self, view: str, ttl_seconds: float) -> int:
        with self._lock:
            live = self._live(view)
            for entry in live.values():
                entry.expires_at = entry.written_at + ttl_seconds
            touched = len(live)
            self._live(view)
            return touched

    def view_stats(self, view: str, sample: int = 100) -> ViewStats:
        with self._lock:
            live = self._live(view)
            now = self.clock.now()
            entries = list(live.values())[:sample]
            sizes = [sum(len(k) + len(v) for k, v in e.values.items()) for e in entries]
            return ViewStats(
                entities=len(live),
                sampled_bytes=sum(sizes) / len(sizes) if sizes else 0.0,
                ttl_remaining=[e.expires_at - now for e in entries],
                write_ages=[now - e.written_at for e in entries],
            )

    # -- real-time primitives -------------------------------------------------------

    def _fresh(
        self, table: dict[str, tuple[dict[str, float], float]], entity: str
    ) -> dict[str, float] | None:
        found = table.get(entity)
        if found is None or found[1] <= self.clock.now():
            table.pop(entity, None)
            return None
        return found[0]

    def push_recent(
        self, view: str, entries: Sequence[RecentEntry], max_len: int, ttl_seconds: float
    ) -> None:
        with self._lock:
            table = self._recent.setdefault(view, {})
            expires = self.clock.now() + ttl_seconds
            touched: dict[str, dict[str, float]] = {}
            for entry in entries:
                members = touched.get(entry.entity_id)
                if members is None:
                    members = touched[entry.entity_id] = self._fresh(table, entry.entity_id) or {}
                members[entry.member] = max(
                    members.get(entry.member, entry.timestamp), entry.timestamp
                )
            # trimmed once per call (as Redis does per batch), not once per entry
            for entity, members in touched.items():
                if len(members) > max_len:
                    newest = sorted(members.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
                    members = dict(newest[:max_len])
                table[entity] = (members, expires)

    def read_recent(
        self, view: str, entity_ids: Sequence[str], limit: int
    ) -> list[list[tuple[str, float]]]:
        with self._lock:
            table = self._recent.setdefault(view, {})
            out = []
            for entity in entity_ids:
                members = self._fresh(table, entity) or {}
                ordered = sorted(members.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
                out.append(ordered[:limit])
            return out

    def contains_recent(self, view: str, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        with self._lock:
            table = self._recent.setdefault(view, {})
            return [member in (self._fresh(table, entity) or {}) for entity, member in pairs]

    def increment(
        self,
        view: str,
        updates: Sequence[CounterUpdate],
        ttl_seconds: float,
        drop_before: Mapping[str, float] | None = None,
    ) -> None:
        with self._lock:
            table = self._counters.setdefault(view, {})
            expires = self.clock.now() + ttl_seconds
            for update in updates:
                counters = self._fresh(table, update.entity_id) or {}
                for name, delta in update.deltas.items():
                    counters[name] = counters.get(name, 0.0) + delta
                for name in list(counters):
                    parsed = bucket_start(name)
                    if (
                        parsed
                        and drop_before
                        and parsed[0] in drop_before
                        and parsed[1] < drop_before[parsed[0]]
                    ):
                        del counters[name]
                table[update.entity_id] = (counters, expires)

    def read_counters(self, view: str, entity_ids: Sequence[str]) -> list[dict[str, float]]:
        with self._lock:
            table = self._counters.setdefault(view, {})
            return [dict(self._fresh(table, entity) or {}) for entity in entity_ids]

    def add_decayed(
        self,
        view: str,
        scores: Sequence[tuple[str, float, float]],
        half_life_seconds: float,
        ttl_seconds: float,
        max_members: int = 100_000,
    ) -> None:
        with self._lock:
            found = self._decayed.get(view)
            members = found[0] if found and found[1] > self.clock.now() else {}
            for member, amount, timestamp in scores:
                members[member] = add_log_score(
                    members.get(member), amount, timestamp, half_life_seconds
                )
            if len(members) > max_members:
                # ties by member, as top_decayed ranks them
                best = sorted(members.items(), key=lambda kv: (-kv[1], kv[0]))
                members = dict(best[:max_members])
            self._decayed[view] = (members, self.clock.now() + ttl_seconds)

    def top_decayed(
        self, view: str, n: int, now: float, half_life_seconds: float
    ) -> list[tuple[str, float]]:
        with self._lock:
            found = self._decayed.get(view)
            if not found or found[1] <= self.clock.now():
                return []
            best = sorted(found[0].items(), key=lambda kv: (-kv[1], kv[0]))[:n]
            return [(member, value_at(score, now, half_life_seconds)) for member, score in best]

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release."""
