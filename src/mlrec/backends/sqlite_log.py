"""An embedded durable event log on one SQLite file: the local default, no server.

The same protocols as Kafka (:mod:`mlrec.events.log`) and the same contract tests,
so the API and the stream processor run unchanged on a laptop.

Model (Kafka's, simplified):

* A topic has a fixed number of partitions, set when the topic is first used
  (:meth:`SqliteEventLog.ensure_topics`, or the log's default ``partitions``). A
  record goes to ``crc32(key) % partitions`` (round robin when it has no key), so
  one key's records stay in order in one partition.
* Offsets are dense per partition, starting at 0.
* Each consumer group's committed offsets live in a table, per (group, topic,
  partition); a consumer resumes there (or, where its group committed nothing, at
  the start of the partition, or its end with ``auto_offset_reset="latest"``).

Durability: WAL journal with ``synchronous=FULL``, so :meth:`~SqliteLogProducer.produce`
returns only after the commit reached the disk (fsync). Several processes may share
the file: producers serialize on SQLite's write lock (``BEGIN IMMEDIATE``).

Consumer groups: one consumer of a group reads at a time, and it reads every
partition (there is no partition assignment). The reader holds a lease on the group,
renewed as it polls; the other consumers of the group (e.g. the stream processor of
each uvicorn worker) poll nothing, like Kafka consumers left without a partition,
until the lease is released (:meth:`SqliteLogConsumer.close`) or lapses
(``lease_seconds`` after it was last renewed, at half-life by a poll: between half
of that and all of it after the reader's last poll); the next reader resumes at the
committed offsets, and a consumer that lost its lease cannot commit. Kafka is the
answer for reading in parallel.

Retention, as Kafka's ``retention.ms``: :meth:`SqliteEventLog.delete_older_than`
deletes records appended before a cut-off, whether consumed or not (the API runs it
periodically, 7 days by default); :meth:`SqliteEventLog.purge_consumed` deletes what
given groups have all read. The newest record of each partition is always kept, so
offsets keep counting up.

Example::

    log = SqliteEventLog("/tmp/events.db", partitions=6)
    log.producer().produce("mlrec.interactions", [(b"u1", b"{...}")])
    consumer = log.consumer("stream", ["mlrec.interactions"])
    records = consumer.poll(1000, 0.5)
    consumer.commit()
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from mlrec.backends._sqlite import enable_wal
from mlrec.core.errors import BackendUnavailableError, ConfigurationError
from mlrec.events.log import LogRecord, positions_after

__all__ = ["SqliteEventLog", "SqliteLogConsumer", "SqliteLogFollower", "SqliteLogProducer"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    topic TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    appended_at REAL NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS REAL)),
    PRIMARY KEY (topic, partition, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_leases (
    group_id TEXT PRIMARY KEY,
    member TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
"""

# How often an idle poll looks for new records (another process may write them): from
# every 10 ms, backing off to every 100 ms while nothing arrives (each wake-up costs
# the serving threads a GIL hand-off).
_IDLE_INTERVAL_S = 0.01
_MAX_IDLE_INTERVAL_S = 0.1
# A consumer group's reader must poll at least this often to keep reading it.
GROUP_LEASE_S = 10.0
# How often a consumer waiting for its group looks whether the lease became free.
_LEASE_CHECK_S = 0.5


def partition_for(key: bytes | None, partitions: int, counter: Iterator[int]) -> int:
    """The partition of a record: by key hash (stable across processes), else round robin."""
    if key is None:
        return next(counter) % partitions
    return zlib.crc32(key) % partitions


class _Db:
    """One connection, guarded by a lock, that maps SQLite failures to ours."""

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            enable_wal(self.conn, busy_timeout_s)
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"cannot open the event log {path}: {exc}") from exc

    @contextmanager
    def tx(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        # The busy timeout bounds the whole wait, the time queued behind this
        # process's other threads (one connection) included: else the n-th thread
        # waits n timeouts while another process holds the write lock.
        deadline = time.monotonic() + self.busy_timeout_s
        if not self.lock.acquire(timeout=self.busy_timeout_s):
            raise BackendUnavailableError(
                f"event log {self.path}: busy for {self.busy_timeout_s:g} s"
                " (this process's other writers held it)"
            )
        try:
            try:
                left_ms = max(1, int((deadline - time.monotonic()) * 1000))
                self.conn.execute(f"PRAGMA busy_timeout={left_ms}")
                self.conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise BackendUnavailableError(f"event log {self.path}: {exc}") from exc
        finally:
            self.lock.release()

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class SqliteEventLog:
    """A durable partitioned log in the SQLite file ``path``.

    Args:
        path: the database file (created with its directory if missing).
        partitions: partition count of topics first used without :meth:`ensure_topics`.
        busy_timeout_s: how long to wait for another process's write lock before
            raising :class:`BackendUnavailableError`.
    """

    def __init__(self, path: str | Path, partitions: int = 6, busy_timeout_s: float = 10.0) -> None:
        if partitions < 1:
            raise ConfigurationError(f"partitions must be at least 1, got {partitions}")
        self.path = Path(path)
        self.partitions = partitions
        self.busy_timeout_s = busy_timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(f"cannot create {self.path.parent}: {exc}") from exc
        db = self._db()
        try:
            with db.lock:
                db.conn.executescript(_SCHEMA)
            with db.tx(immediate=True) as conn:  # processes opening it at once: one alters
                columns = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
                if "appended_at" not in columns:  # a log file of an older mlrec
                    # its records count as appended now: retention starts from here
                    conn.execute(
                        "ALTER TABLE records ADD COLUMN appended_at REAL NOT NULL"
                        f" DEFAULT {time.time():.3f}"
                    )
        except sqlite3.Error as exc:
            raise BackendUnavailableError(
                f"cannot create the event log {self.path}: {exc}"
            ) from exc
        finally:
            db.close()

    def _db(self) -> _Db:
        return _Db(self.path, self.busy_timeout_s)

    def ensure_topics(self, topics: Mapping[str, int]) -> None:
        """Create ``topics`` (name -> partitions) unless they exist; idempotent.

        An existing topic keeps its partition count (records are already placed
        by it); asking for another count is refused with :class:`ConfigurationError`.
        """
        db = self._db()
        try:
            with db.tx(immediate=True) as conn:
                for topic, partitions in topics.items():
                    row = conn.execute(
                        "SELECT partitions FROM topics WHERE topic = ?", (topic,)
                    ).fetchone()
                    if row is None:
                        conn.execute("INSERT INTO topics VALUES (?, ?)", (topic, partitions))
                    elif row[0] != partitions:
                        raise ConfigurationError(
                            f"topic {topic!r} already has {row[0]} partitions, not {partitions}"
                        )
        finally:
            db.close()

    def producer(self) -> SqliteLogProducer:
        """A producer with its own connection (thread-safe)."""
        return SqliteLogProducer(self._db(), self.partitions)

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        auto_offset_reset: str = "earliest",
        lease_seconds: float = GROUP_LEASE_S,
    ) -> SqliteLogConsumer:
        """A consumer of ``group_id`` for ``topics``; one of a group reads at a time."""
        return SqliteLogConsumer(self._db(), group_id, topics, auto_offset_reset, lease_seconds)

    def follower(self, topics: Sequence[str]) -> SqliteLogFollower:
        """A reader of ``topics`` from their end, in no group (it writes nothing)."""
        return SqliteLogFollower(self._db(), topics)

    def delete_older_than(self, seconds: float, now: float | None = None) -> int:
        """Delete records appended more than ``seconds`` ago (but the newest of each
        partition, and any after a newer one: records are appended in time order);
        returns how many. A consumer behind them resumes at the oldest
        record left, as a Kafka consumer whose offset fell out of retention."""
        cutoff = (time.time() if now is None else now) - seconds
        db = self._db()
        try:
            with db.tx(immediate=True) as conn:
                # Records are appended in time order, so the old ones are each
                # partition's head: walk it by primary key up to the first record
                # still kept, instead of scanning the whole log under the write lock
                # (every producer waits behind it).
                deleted = 0
                for topic, partitions in conn.execute("SELECT topic, partitions FROM topics"):
                    for partition in range(int(partitions)):
                        (keep_from,) = conn.execute(
                            "SELECT coalesce("
                            " (SELECT offset FROM records WHERE topic = ? AND partition = ?"
                            "  AND appended_at >= ? ORDER BY offset LIMIT 1),"
                            " (SELECT MAX(offset) FROM records WHERE topic = ? AND partition = ?))",
                            (topic, partition, cutoff, topic, partition),
                        ).fetchone()
                        if keep_from is None:
                            continue  # an empty partition
                        deleted += conn.execute(
                            "DELETE FROM records WHERE topic = ? AND partition = ? AND offset < ?",
                            (topic, partition, keep_from),
                        ).rowcount
                return deleted
        finally:
            db.close()

    def purge_consumed(self, groups: Sequence[str]) -> int:
        """Delete records every one of ``groups`` has committed past; returns how many."""
        if not groups:
            return 0
        db = self._db()
        marks = ",".join("?" * len(groups))
        try:
            with db.tx(immediate=True) as conn:
                cur = conn.execute(
                    f"""
                    DELETE FROM records WHERE (topic, partition, offset) IN (
                      SELECT r.topic, r.partition, r.offset FROM records r
                      JOIN (SELECT topic, partition, MIN(offset) AS low, COUNT(*) AS n
                            FROM group_offsets WHERE group_id IN ({marks})
                            GROUP BY topic, partition) g
                        ON g.topic = r.topic AND g.partition = r.partition
                      WHERE g.n = ? AND r.offset < g.low
                        AND r.offset < (SELECT MAX(offset) FROM records m
                                        WHERE m.topic = r.topic AND m.partition = r.partition)
                    )
                    """,
                    (*groups, len(groups)),
                )
                return cur.rowcount
        finally:
            db.close()


def _topic_partitions(conn: sqlite3.Connection, topic: str, default: int) -> int:
    row = conn.execute("SELECT partitions FROM topics WHERE topic = ?", (topic,)).fetchone()
    if row is not None:
        return int(row[0])
    conn.execute("INSERT INTO topics VALUES (?, ?)", (topic, default))
    return default


class SqliteLogProducer:
    """Appends records to the embedded log; returns after the fsync'ed commit."""

    def __init__(self, db: _Db, default_partitions: int) -> None:
        self._db = db
        self._default_partitions = default_partitions
        self._round_robin = itertools.count()

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Append ``records`` to ``topic`` in one durable transaction.

        Raises:
            BackendUnavailableError: the file could not be written (nothing was).
        """
        if not records:
            return
        with self._db.tx(immediate=True) as conn:
            partitions = _topic_partitions(conn, topic, self._default_partitions)
            next_offset: dict[int, int] = {}
            rows: list[tuple[str, int, int, bytes | None, bytes, float]] = []
            appended_at = time.time()
            for key, value in records:
                partition = partition_for(key, partitions, self._round_robin)
                offset = next_offset.get(partition)
                if offset is None:
                    (last,) = conn.execute(
                        "SELECT MAX(offset) FROM records WHERE topic = ? AND partition = ?",
                        (topic, partition),
                    ).fetchone()
                    offset = -1 if last is None else int(last)
                    offset += 1
                next_offset[partition] = offset + 1
                rows.append((topic, partition, offset, key, value, appended_at))
            conn.executemany(
                "INSERT INTO records (topic, partition, offset, key, value, appended_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def reachable(self) -> bool:
        """Whether the log file can be read now, on a short-lived connection of its own:
        a produce waiting for another process's write lock does not hold the probe up."""
        try:
            with closing(sqlite3.connect(self._db.path, timeout=0.25)) as conn:
                conn.execute("SELECT 1 FROM topics LIMIT 1").fetchall()
            return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        """Release the connection (every produced record is already durable)."""
        self._db.close()


class _SqliteReader:
    """Reads topics of the log from per-partition positions; what to read from, and
    whether this reader may read now, is its subclass's business."""

    def __init__(self, db: _Db, topics: Sequence[str]) -> None:
        self._db = db
        self.topics = list(topics)
        # Next offset to read per (topic, partition); unset until the partition exists.
        self._position: dict[tuple[str, int], int] = {}
        self._next_partition = 0
        # The database's data_version when a read last came back empty: an idle poll
        # re-reads only after another connection wrote (one PRAGMA, not a query per
        # partition, every 10 ms).
        self._empty_at: int | None = None
        self._idle_interval = _IDLE_INTERVAL_S

    def _may_read(self) -> float:
        """0 if this reader may read now, else how long to wait before asking again."""
        return 0.0

    def _first_positions(
        self, conn: sqlite3.Connection, new: list[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        """Where to start reading partitions seen for the first time."""
        raise NotImplementedError

    def _data_version(self) -> int:
        with self._db.lock:
            try:
                return int(self._db.conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error as exc:
                raise BackendUnavailableError(f"event log {self._db.path}: {exc}") from exc

    def _discover(self, conn: sqlite3.Connection) -> list[tuple[str, int]]:
        """Partitions of the subscribed topics; positions of new ones set."""
        marks = ",".join("?" * len(self.topics))
        known = conn.execute(
            f"SELECT topic, partitions FROM topics WHERE topic IN ({marks})", self.topics
        ).fetchall()
        parts = [(topic, p) for topic, n in known for p in range(int(n))]
        new = [tp for tp in parts if tp not in self._position]
        if new:
            self._position.update(self._first_positions(conn, new))
        return parts

    def _bounds(self, conn: sqlite3.Connection, tp: tuple[str, int]) -> tuple[int, int]:
        """The partition's first offset and the offset after its last (0, 0 if empty)."""
        low, high = conn.execute(
            "SELECT MIN(offset), MAX(offset) FROM records WHERE topic = ? AND partition = ?", tp
        ).fetchone()
        return (0, 0) if low is None else (int(low), int(high) + 1)

    def _read(self, max_records: int) -> list[LogRecord]:
        out: list[LogRecord] = []
        with self._db.tx() as conn:
            parts = self._discover(conn)
            if not parts:
                return out
            # Start at a rotating partition so a busy one cannot starve the others.
            start = self._next_partition % len(parts)
            self._next_partition += 1
            for topic, partition in parts[start:] + parts[:start]:
                room = max_records - len(out)
                if room <= 0:
                    break
                position = self._position[(topic, partition)]
                rows = conn.execute(
                    "SELECT offset, key, value FROM records WHERE topic = ? AND partition = ?"
                    " AND offset >= ? ORDER BY offset LIMIT ?",
                    (topic, partition, position, room),
                ).fetchall()
                for offset, key, value in rows:
                    out.append(LogRecord(topic, partition, int(offset), key, value))
                if rows:
                    self._position[(topic, partition)] = int(rows[-1][0]) + 1
        return out

    def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
        """Up to ``max_records`` records after this reader's position, waiting up to
        the timeout."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            wait = self._may_read()
            if wait > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                time.sleep(min(wait, left))
                continue
            version = self._data_version()
            records = [] if version == self._empty_at else self._read(max_records)
            if records:
                self._idle_interval = _IDLE_INTERVAL_S
                return records
            self._empty_at = version
            left = deadline - time.monotonic()
            if left <= 0:
                return records
            time.sleep(min(self._idle_interval, left))
            self._idle_interval = min(2 * self._idle_interval, _MAX_IDLE_INTERVAL_S)

    def close(self) -> None:
        """Release the connection."""
        self._db.close()


class SqliteLogFollower(_SqliteReader):
    """Follows topics from their end, in no group (see
    :class:`~mlrec.events.log.EventFollower`): it writes nothing to the log."""

    def __init__(self, db: _Db, topics: Sequence[str]) -> None:
        super().__init__(db, topics)
        self._opened = False
        with self._db.tx() as conn:
            self._discover(conn)  # partitions existing now: from their end
        self._opened = True

    def _first_positions(
        self, conn: sqlite3.Connection, new: list[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        first: dict[tuple[str, int], int] = {}
        for tp in new:
            low, end = self._bounds(conn, tp)
            # a partition created after the follower opened holds only newer records
            first[tp] = low if self._opened else end
        return first


class SqliteLogConsumer(_SqliteReader):
    """A consumer of a group on the embedded log; it reads while it holds the
    group's lease (see the module docstring)."""

    def __init__(
        self,
        db: _Db,
        group_id: str,
        topics: Sequence[str],
        auto_offset_reset: str,
        lease_seconds: float = GROUP_LEASE_S,
    ) -> None:
        if lease_seconds <= 0:
            raise ConfigurationError(f"lease_seconds must be positive, got {lease_seconds}")
        super().__init__(db, topics)
        self.group_id = group_id
        self._earliest = auto_offset_reset == "earliest"
        self._member = uuid.uuid4().hex
        self._lease_seconds = lease_seconds
        # Wall-clock time (shared by processes) until which this consumer holds the
        # lease as far as it knows; 0 = it does not.
        self._lease_until = 0.0
        self._next_lease_check = 0.0
        self._committed: dict[tuple[str, int], int] = {}

    def _may_read(self) -> float:
        if self._reads_group():
            return 0.0
        return max(self._next_lease_check - time.time(), 0.001)

    def _reads_group(self) -> bool:
        """Whether this consumer holds the group's lease, taking or renewing it when
        due. Taken over from another consumer, reading resumes at the commits."""
        now = time.time()
        if now < self._lease_until - self._lease_seconds / 2:
            return True  # renewed at half-life: no write on most polls
        if not self._lease_until and now < self._next_lease_check:
            return False
        with self._db.tx(immediate=True) as conn:
            row = conn.execute(
                "SELECT member, expires_at FROM group_leases WHERE group_id = ?",
                (self.group_id,),
            ).fetchone()
            if row is not None and row[0] != self._member and float(row[1]) > now:
                held = False
            else:
                held = True
                conn.execute(
                    "INSERT INTO group_leases VALUES (?, ?, ?) ON CONFLICT (group_id)"
                    " DO UPDATE SET member = excluded.member, expires_at = excluded.expires_at",
                    (self.group_id, self._member, now + self._lease_seconds),
                )
        if not held:
            if self._lease_until:  # lost it: another consumer reads (and commits) now
                self.rewind()
            self._lease_until = 0.0
            self._next_lease_check = now + min(_LEASE_CHECK_S, self._lease_seconds / 2)
            return False
        if row is None or row[0] != self._member:
            self.rewind()  # someone else may have read and committed since
        self._lease_until = now + self._lease_seconds
        return True

    def _first_positions(
        self, conn: sqlite3.Connection, new: list[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        committed = self._load_committed(conn)
        first: dict[tuple[str, int], int] = {}
        for tp in new:
            if tp in committed:
                first[tp] = self._committed[tp] = committed[tp]
            else:
                low, end = self._bounds(conn, tp)
                first[tp] = low if self._earliest else end
        return first

    def _load_committed(self, conn: sqlite3.Connection) -> dict[tuple[str, int], int]:
        rows = conn.execute(
            "SELECT topic, partition, offset FROM group_offsets WHERE group_id = ?",
            (self.group_id,),
        ).fetchall()
        return {(t, int(p)): int(o) for t, p, o in rows if t in self.topics}

    def commit(self, through: Sequence[LogRecord] | None = None) -> None:
        """Store the positions after every record polled so far (durably), or only
        after the records in ``through``."""
        positions = self._position if through is None else positions_after(through)
        changed = [
            (self.group_id, t, p, o)
            for (t, p), o in positions.items()
            if self._committed.get((t, p)) != o
        ]
        if not changed:
            return
        with self._db.tx(immediate=True) as conn:
            row = conn.execute(
                "SELECT member FROM group_leases WHERE group_id = ?", (self.group_id,)
            ).fetchone()
            if row is None or row[0] != self._member:
                self._lease_until = 0.0
                raise BackendUnavailableError(
                    f"consumer group {self.group_id!r} is read by another consumer now "
                    "(this one did not poll for its lease time): nothing was committed"
                )
            # Never backwards: a batch polled before this consumer lost the lease and
            # took it back (another reader committed past it meanwhile) must not make
            # the group re-read what is already applied and committed.
            conn.executemany(
                "INSERT INTO group_offsets VALUES (?, ?, ?, ?) ON CONFLICT"
                " (group_id, topic, partition)"
                " DO UPDATE SET offset = max(offset, excluded.offset)",
                changed,
            )
        for _, t, p, o in changed:
            self._committed[(t, p)] = o

    def rewind(self) -> None:
        """Forget uncommitted positions: the next poll starts at the committed offsets."""
        self._position.clear()
        self._committed.clear()
        self._empty_at = None

    def lag(self) -> int:
        """Records after this consumer's position, summed over the partitions."""
        with self._db.tx() as conn:
            self._discover(conn)
            total = 0
            for (topic, partition), position in self._position.items():
                (high,) = conn.execute(
                    "SELECT MAX(offset) FROM records WHERE topic = ? AND partition = ?",
                    (topic, partition),
                ).fetchone()
                if high is not None:
                    total += max(0, int(high) + 1 - position)
            return total

    def close(self) -> None:
        """Release the group's lease and the connection (uncommitted records are
        redelivered to the group's next reader)."""
        try:
            if self._lease_until:
                with self._db.tx(immediate=True) as conn:
                    conn.execute(
                        "DELETE FROM group_leases WHERE group_id = ? AND member = ?",
                        (self.group_id, self._member),
                    )
        except BackendUnavailableError:
            pass  # the lease lapses by itself
        finally:
            self._lease_until = 0.0
            self._db.close()
