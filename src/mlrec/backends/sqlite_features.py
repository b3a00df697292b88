"""SQLite :class:`~mlrec.features.online_store.OnlineStore`: the embedded local default.

One database file, safe to share between threads and processes: WAL journal (readers
never block the writer), a busy timeout, one connection per thread, and one
``BEGIN IMMEDIATE`` transaction per batch, so every entity's write is atomic and a
reader sees a batch entirely or not at all.

Expiry is measured with the injected clock (``expires_at = clock.now() + ttl`` on
each write, as in the in-memory store), so TTL tests need no sleeping. Expired data
is never returned, and is deleted lazily: by the writes of the same view, by
``apply_ttl`` and by ``view_stats``.

Tables::

    entities(view, entity, written_at, expires_at)      one row per live entity
    fields(view, entity, field, value BLOB)             one row per feature value
    collections(kind, view, entity, expires_at)         expiry of a recent list,
                                                        counter set or decayed set
    recent(view, entity, member, ts)
    counters(view, entity, name, value)
    decayed(view, member, score)                        log scores (mlrec.features.decay)
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from mlrec.backends._sqlite import enable_wal
from mlrec.core.clock import Clock, SystemClock
from mlrec.core.errors import BackendError, BackendUnavailableError
from mlrec.features.decay import add_log_score, value_at
from mlrec.features.online_store import (
    CounterUpdate,
    RecentEntry,
    RowWrite,
    StoredRow,
    ViewStats,
    bucket_start,
)

__all__ = ["SqliteOnlineStore"]

_T = TypeVar("_T")
# Bound on host parameters per statement (SQLite's limit is 32766 since 3.32).
_CHUNK = 500
_RECENT, _COUNTERS, _DECAYED = "recent", "counters", "decayed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    view TEXT NOT NULL, entity TEXT NOT NULL,
    written_at REAL NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (view, entity)
);
CREATE INDEX IF NOT EXISTS entities_written ON entities (view, written_at);
CREATE INDEX IF NOT EXISTS entities_expires ON entities (view, expires_at);
CREATE TABLE IF NOT EXISTS fields (
    view TEXT NOT NULL, entity TEXT NOT NULL, field TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (view, entity, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS collections (
    kind TEXT NOT NULL, view TEXT NOT NULL, entity TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (kind, view, entity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recent (
    view TEXT NOT NULL, entity TEXT NOT NULL, member TEXT NOT NULL, ts REAL NOT NULL,
    PRIMARY KEY (view, entity, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recent_order ON recent (view, entity, ts DESC, member DESC);
CREATE TABLE IF NOT EXISTS counters (
    view TEXT NOT NULL, entity TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (view, entity, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decayed (
    view TEXT NOT NULL, member TEXT NOT NULL, score REAL NOT NULL,
    PRIMARY KEY (view, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS decayed_order ON decayed (view, score DESC, member);
"""


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class SqliteOnlineStore:
    """Online store in one SQLite file, shared safely by threads and processes.

    Args:
        path: the database file (created with its directory if missing).
        clock: measures expiry; the wall clock by default.
        busy_timeout: seconds a writer waits for another process's transaction
            before raising ``BackendUnavailableError``.

    Example::

        store = SqliteOnlineStore("/var/lib/mlrec/features.db")
        store.write_rows("user_profile", rows, ttl_seconds=86400, max_entities=None)
    """

    def __init__(
        self, path: str | Path, *, clock: Clock | None = None, busy_timeout: float = 5.0
    ) -> None:
        self.path = Path(path)
        self.clock = clock or SystemClock()
        self._busy_ms = int(busy_timeout * 1000)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._errors():
            self._conn().executescript(_SCHEMA)

    # -- plumbing -------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            # "database is locked", "unable to open database file", disk I/O errors.
            raise BackendUnavailableError(f"SQLite online store {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise BackendError(f"SQLite online store {self.path}: {exc}") from exc

    def _in_transaction(self) -> bool:
        return bool(getattr(self._local, "atomic_depth", 0))

    @contextmanager
    def atomically(self) -> Iterator[None]:
        """Every call of this thread inside the block is one transaction (see
        :class:`~mlrec.features.online_store.AtomicWrites`)."""
        depth: int = getattr(self._local, "atomic_depth", 0)
        if depth:
            self._local.atomic_depth = depth + 1
            try:
                yield
            finally:
                self._local.atomic_depth = depth
            return
        with self._write():
            self._local.atomic_depth = 1
            try:
                yield
            finally:
                self._local.atomic_depth = 0

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One immediate (write-locking) transaction, or part of the open one."""
        with self._errors():
            conn = self._conn()
            if self._in_transaction():
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction (a consistent snapshot across statements), or part of
        the open one."""
        with self._errors():
            conn = self._conn()
            if self._in_transaction():
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def _purge_rows(self, conn: sqlite3.Connection, view: str, now: float) -> None:
        conn.execute(
            "DELETE FROM fields WHERE view = ? AND entity IN "
            "(SELECT entity FROM entities WHERE view = ? AND expires_at <= ?)",
            (view, view, now),
        )
        conn.execute("DELETE FROM entities WHERE view = ? AND expires_at <= ?", (view, now))

    def _delete_rows(self, conn: sqlite3.Connection, view: str, entities: Sequence[str]) -> int:
        removed = 0
        for chunk in _chunks(entities):
            marks = _marks(len(chunk))
            conn.execute(
                f"DELETE FROM fields WHERE view = ? AND entity IN ({marks})", (view, *chunk)
            )
            cur = conn.execute(
                f"DELETE FROM entities WHERE view = ? AND entity IN ({marks})", (view, *chunk)
            )
            removed += cur.rowcount
        return removed

    # -- rows -----------------------------------------------------------------------

    def write_rows(
        self, view: str, rows: Sequence[RowWrite], ttl_seconds: float, max_entities: int | None
    ) -> int:
        """Write rows (each entity atomically), refresh their TTL, enforce ``max_entities``;
        returns how many were written (a row older than the stored one is skipped)."""
        if not rows:
            return 0
        now = self.clock.now()
        expires = now + ttl_seconds
        with self._write() as conn:
            self._purge_rows(conn, view, now)
            entities = list({r.entity_id for r in rows})
            stored: dict[str, float] = {}
            for start in range(0, len(entities), 500):
                chunk = entities[start : start + 500]
                stored.update(
                    conn.execute(
                        "SELECT entity, written_at FROM entities WHERE view = ?"
                        f" AND entity IN ({','.join('?' * len(chunk))})",
                        (view, *chunk),
                    ).fetchall()
                )
            current = []
            for row in rows:  # in order: a row older than what is stored is skipped
                if row.written_at >= stored.get(row.entity_id, float("-inf")):
                    stored[row.entity_id] = row.written_at
                    current.append(row)
            conn.executemany(
                "INSERT INTO entities (view, entity, written_at, expires_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (view, entity) DO UPDATE SET"
                " written_at = excluded.written_at, expires_at = excluded.expires_at",
                [(view, r.entity_id, float(r.written_at), expires) for r in current],
            )
            conn.executemany(
                "INSERT INTO fields (view, entity, field, value) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (view, entity, field) DO UPDATE SET value = excluded.value",
                [
                    (view, r.entity_id, name, value)
                    for r in current
                    for name, value in r.values.items()
                ],
            )
            if max_entities is not None:
                (count,) = conn.execute(
                    "SELECT count(*) FROM entities WHERE view = ?", (view,)
                ).fetchone()
                if count > max_entities:
                    victims = [
                        e
                        for (e,) in conn.execute(
                            # ties by entity id (BINARY collation: UTF-8 bytes), as
                            # Redis orders equal scores
                            "SELECT entity FROM entities WHERE view = ?"
                            " ORDER BY written_at, entity LIMIT ?",
                            (view, count - max_entities),
                        )
                    ]
                    self._delete_rows(conn, view, victims)
        return len(current)

    def read_rows(
        self, view: str, entity_ids: Sequence[str], fields: Sequence[str]
    ) -> list[StoredRow | None]:
        """For each entity, its requested fields and last write time (None if absent/expired)."""
        now = self.clock.now()
        found: dict[str, StoredRow] = {}
        with self._read() as conn:
            for chunk in _chunks(entity_ids):
                # "+expires_at": without it, the planner scans every live entity of the
                # view on the expiry index instead of looking the entities up by key
                for entity, written_at in conn.execute(
                    f"SELECT entity, written_at FROM entities WHERE view = ?"
                    f" AND entity IN ({_marks(len(chunk))}) AND +expires_at > ?",
                    (view, *chunk, now),
                ):
                    found[entity] = StoredRow({}, written_at)
                if not fields or not found:
                    continue
                for entity, name, value in conn.execute(
                    f"SELECT entity, field, value FROM fields WHERE view = ?"
                    f" AND entity IN ({_marks(len(chunk))}) AND field IN ({_marks(len(fields))})",
                    (view, *chunk, *fields),
                ):
                    row = found.get(entity)
                    if row is not None:
                        row.values[name] = bytes(value)
        out: list[StoredRow | None] = []
        for entity in entity_ids:
            row = found.get(entity)
            # A fresh dict per position: the same entity may be asked for twice.
            out.append(None if row is None else StoredRow(dict(row.values), row.written_at))
        return out

    def delete_entities(self, view: str, entity_ids: Sequence[str]) -> int:
        """Remove entities; returns how many existed (expired ones do not count)."""
        if not entity_ids:
            return 0
        with self._write() as conn:
            self._purge_rows(conn, view, self.clock.now())
            return self._delete_rows(conn, view, list(dict.fromkeys(entity_ids)))

    def apply_ttl(self, view: str, ttl_seconds: float) -> int:
        """Set every live entity's expiry to ``written_at + ttl``; remove those past it."""
        now = self.clock.now()
        with self._write() as conn:
            self._purge_rows(conn, view, now)
            cur = conn.execute(
                "UPDATE entities SET expires_at = written_at + ? WHERE view = ?",
                (ttl_seconds, view),
            )
            touched = cur.rowcount
            self._purge_rows(conn, view, now)
            return touched

    def view_stats(self, view: str, sample: int = 100) -> ViewStats:
        """Entity count and, over a sample, payload bytes, remaining TTL and write age."""
        now = self.clock.now()
        with self._write() as conn:
            self._purge_rows(conn, view, now)
            (count,) = conn.execute(
                "SELECT count(*) FROM entities WHERE view = ?", (view,)
            ).fetchone()
            rows = conn.execute(
                "SELECT e.written_at, e.expires_at,"
                " (SELECT coalesce(sum(length(f.field) + length(f.value)), 0) FROM fields f"
                "  WHERE f.view = e.view AND f.entity = e.entity)"
                " FROM entities e WHERE e.view = ? ORDER BY e.rowid LIMIT ?",
                (view, max(sample, 0)),
            ).fetchall()
        sizes = [float(size) for _, _, size in rows]
        return ViewStats(
            entities=count,
            sampled_bytes=sum(sizes) / len(sizes) if sizes else 0.0,
            ttl_remaining=[expires - now for _, expires, _ in rows],
            write_ages=[now - written for written, _, _ in rows],
        )

    # -- real-time primitives ---------------------------------------------------------

    def _open_collection(
        self, conn: sqlite3.Connection, kind: str, view: str, entity: str, now: float
    ) -> None:
        """Clear the collection's content if it has expired (it starts afresh)."""
        row = conn.execute(
            "SELECT expires_at FROM collections WHERE kind = ? AND view = ? AND entity = ?",
            (kind, view, entity),
        ).fetchone()
        if row is not None and row[0] <= now:
            self._drop_collection(conn, kind, view, entity)

    def _drop_collection(self, conn: sqlite3.Connection, kind: str, view: str, entity: str) -> None:
        if kind == _DECAYED:
            conn.execute("DELETE FROM decayed WHERE view = ?", (view,))
        else:
            conn.execute(f"DELETE FROM {kind} WHERE view = ? AND entity = ?", (view, entity))
        conn.execute(
            "DELETE FROM collections WHERE kind = ? AND view = ? AND entity = ?",
            (kind, view, entity),
        )

    def _touch_collection(
        self, conn: sqlite3.Connection, kind: str, view: str, entity: str, expires: float
    ) -> None:
        conn.execute(
            "INSERT INTO collections (kind, view, entity, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, view, entity) DO UPDATE SET expires_at = excluded.expires_at",
            (kind, view, entity, expires),
        )

    def _live_entities(
        self, conn: sqlite3.Connection, kind: str, view: str, entities: Sequence[str], now: float
    ) -> set[str]:
        live: set[str] = set()
        for chunk in _chunks(entities):
            live.update(
                e
                for (e,) in conn.execute(
                    f"SELECT entity FROM collections WHERE kind = ? AND view = ?"
                    f" AND entity IN ({_marks(len(chunk))}) AND expires_at > ?",
                    (kind, view, *chunk, now),
                )
            )
        return live

    def push_recent(
        self, view: str, entries: Sequence[RecentEntry], max_len: int, ttl_seconds: float
    ) -> None:
        """Add members (each at its latest timestamp), keep the ``max_len`` newest per
        entity, refresh the TTL; one transaction per batch."""
        if not entries:
            return
        now = self.clock.now()
        entities = list(dict.fromkeys(e.entity_id for e in entries))
        with self._write() as conn:
            for entity in entities:
                self._open_collection(conn, _RECENT, view, entity, now)
            conn.executemany(
                "INSERT INTO recent (view, entity, member, ts) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (view, entity, member) DO UPDATE SET ts = max(ts, excluded.ts)",
                [(view, e.entity_id, e.member, float(e.timestamp)) for e in entries],
            )
            for entity in entities:
                conn.execute(
                    "DELETE FROM recent WHERE view = ? AND entity = ? AND member IN"
                    " (SELECT member FROM recent WHERE view = ? AND entity = ?"
                    "  ORDER BY ts DESC, member DESC LIMIT -1 OFFSET ?)",
                    (view, entity, view, entity, max_len),
                )
                self._touch_collection(conn, _RECENT, view, entity, now + ttl_seconds)

    def read_recent(
        self, view: str, entity_ids: Sequence[str], limit: int
    ) -> list[list[tuple[str, float]]]:
        """Each entity's recent members with timestamps, newest first, at most ``limit``."""
        now = self.clock.now()
        with self._read() as conn:
            live = self._live_entities(conn, _RECENT, view, entity_ids, now)
            return [
                [
                    (member, ts)
                    for member, ts in conn.execute(
                        "SELECT member, ts FROM recent WHERE view = ? AND entity = ?"
                        " ORDER BY ts DESC, member DESC LIMIT ?",
                        (view, entity, max(limit, 0)),
                    )
                ]
                if entity in live
                else []
                for entity in entity_ids
            ]

    def contains_recent(self, view: str, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """For each ``(entity_id, member)``, whether it is on the entity's live recent list."""
        now = self.clock.now()
        with self._read() as conn:
            live = self._live_entities(conn, _RECENT, view, sorted({e for e, _ in pairs}), now)
            return [
                entity in live
                and conn.execute(
                    "SELECT 1 FROM recent WHERE view = ? AND entity = ? AND member = ?",
                    (view, entity, member),
                ).fetchone()
                is not None
                for entity, member in pairs
            ]

    def increment(
        self,
        view: str,
        updates: Sequence[CounterUpdate],
        ttl_seconds: float,
        drop_before: Mapping[str, float] | None = None,
    ) -> None:
        """Add to counters, drop buckets older than ``drop_before``, refresh the TTL;
        one transaction per batch."""
        if not updates:
            return
        now = self.clock.now()
        entities = list(dict.fromkeys(u.entity_id for u in updates))
        with self._write() as conn:
            for entity in entities:
                self._open_collection(conn, _COUNTERS, view, entity, now)
            conn.executemany(
                "INSERT INTO counters (view, entity, name, value) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (view, entity, name) DO UPDATE SET value = value + excluded.value",
                [
                    (view, u.entity_id, name, float(delta))
                    for u in updates
                    for name, delta in u.deltas.items()
                ],
            )
            for entity in entities:
                if drop_before:
                    names = [
                        name
                        for (name,) in conn.execute(
                            "SELECT name FROM counters WHERE view = ? AND entity = ?",
                            (view, entity),
                        )
                    ]
                    stale = []
                    for name in names:
                        parsed = bucket_start(name)
                        if (
                            parsed
                            and parsed[0] in drop_before
                            and parsed[1] < drop_before[parsed[0]]
                        ):
                            stale.append((view, entity, name))
                    conn.executemany(
                        "DELETE FROM counters WHERE view = ? AND entity = ? AND name = ?", stale
                    )
                self._touch_collection(conn, _COUNTERS, view, entity, now + ttl_seconds)

    def read_counters(self, view: str, entity_ids: Sequence[str]) -> list[dict[str, float]]:
        """All counters of each entity (empty dict if none)."""
        now = self.clock.now()
        found: dict[str, dict[str, float]] = {}
        with self._read() as conn:
            live = self._live_entities(conn, _COUNTERS, view, entity_ids, now)
            for chunk in _chunks(sorted(live)):
                for entity, name, value in conn.execute(
                    f"SELECT entity, name, value FROM counters WHERE view = ?"
                    f" AND entity IN ({_marks(len(chunk))})",
                    (view, *chunk),
                ):
                    found.setdefault(entity, {})[name] = value
        return [dict(found.get(entity, {})) for entity in entity_ids]

    def add_decayed(
        self,
        view: str,
        scores: Sequence[tuple[str, float, float]],
        half_life_seconds: float,
        ttl_seconds: float,
        max_members: int = 100_000,
    ) -> None:
        """Add ``(member, amount, timestamp)`` to the view's log-space decayed scores,
        keep the ``max_members`` best, refresh the TTL; one transaction."""
        now = self.clock.now()
        with self._write() as conn:
            self._open_collection(conn, _DECAYED, view, "", now)
            current: dict[str, float] = {}
            members = list(dict.fromkeys(member for member, _, _ in scores))
            for chunk in _chunks(members):
                current.update(
                    conn.execute(
                        f"SELECT member, score FROM decayed WHERE view = ?"
                        f" AND member IN ({_marks(len(chunk))})",
                        (view, *chunk),
                    ).fetchall()
                )
            for member, amount, timestamp in scores:
                current[member] = add_log_score(
                    current.get(member), amount, timestamp, half_life_seconds
                )
            conn.executemany(
                "INSERT INTO decayed (view, member, score) VALUES (?, ?, ?)"
                " ON CONFLICT (view, member) DO UPDATE SET score = excluded.score",
                [(view, member, score) for member, score in current.items()],
            )
            conn.execute(
                "DELETE FROM decayed WHERE view = ? AND member IN"
                " (SELECT member FROM decayed WHERE view = ?"
                "  ORDER BY score DESC, member LIMIT -1 OFFSET ?)",
                (view, view, max_members),
            )
            self._touch_collection(conn, _DECAYED, view, "", now + ttl_seconds)

    def top_decayed(
        self, view: str, n: int, now: float, half_life_seconds: float
    ) -> list[tuple[str, float]]:
        """The ``n`` members with the highest decayed score, with their value at ``now``."""
        with self._read() as conn:
            if not self._live_entities(conn, _DECAYED, view, [""], self.clock.now()):
                return []
            best = conn.execute(
                "SELECT member, score FROM decayed WHERE view = ?"
                " ORDER BY score DESC, member LIMIT ?",
                (view, max(n, 0)),
            ).fetchall()
        return [(member, value_at(score, now, half_life_seconds)) for member, score in best]

    # -- lifecycle ----------------------------------------------------------------------

    def ping(self) -> bool:
        """True if the database file can be queried (never raises)."""
        try:
            self._conn().execute("SELECT 1").fetchone()
            return True
        except Exception:
            return False

    def close(self) -> None:
        """Close the connections of every thread."""
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
