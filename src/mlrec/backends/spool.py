"""A producer that never refuses an event for an outage: the log, or else a durable
local spool.

:class:`DurableProducer` wraps a primary :class:`~mlrec.events.log.EventProducer`
(Kafka). When the primary cannot acknowledge a batch, the batch is appended to a
spool file on local disk and fsync'ed before :meth:`~DurableProducer.produce`
returns: the events are accepted. A background thread replays the spool into the
primary, oldest first, once it is reachable again; while anything is spooled, new
batches are spooled too, so the primary receives everything in acceptance order.

Spool layout (``spool_dir``)::

    LOCK                   flock'ed by the owning process (one producer per directory)
    00000000000000000001.spool   sealed or active segments, replayed in name order
    00000000000000000001.pos     bytes of that segment the primary acknowledged
    00000000000000000001.done    a segment fully replayed, being removed

A segment is a sequence of frames::

    length u32 | crc32 u32 | payload (length bytes)
    payload  = topic_len u16 | topic utf-8 | key_len i32 (-1: no key) | key | value

A frame whose length runs past the end of the file or whose checksum does not match
(a torn write from a crash) ends the segment: it and anything after it are ignored.
So nothing accepted may follow a torn frame: each process start writes to a new
segment, and a failed append is cut off the file and closes its segment.

A replayed segment is renamed ``.done`` before its ``.pos`` goes, so a crash in
between can neither replay it again nor leave a ``.pos`` that a later segment of the
same number would inherit; sequence numbers also continue past every file present.

A record the primary refuses for good while it is replayed (``ValidationError``: too
large, malformed) would block everything behind it: it is moved to
``rejected.jsonl`` in the spool directory (with the error; kept for an operator, not
replayed) and replay goes on. Other refusals (``BackendError``, e.g. the topic is
denied to us) pause the replay like an outage: an operator has to fix them.

A process replays its own spool directory, and also *adopts* the directories of
``orphans`` (e.g. the spool slots of workers that are gone after a scale-down): any
of them it can lock, it replays and releases, at start and then periodically.

Delivery is at-least-once: a crash between the primary's acknowledgement and the
``.pos`` update replays those records again; consumers dedup by event id.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Counter, Gauge

from mlrec.core.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    ValidationError,
)
from mlrec.events.log import EventProducer

__all__ = ["DurableProducer", "read_segment"]

log = logging.getLogger(__name__)

REJECTED = Counter(
    "mlrec_events_spool_rejected_total",
    "Spooled events the event log refused for good on replay (kept in rejected.jsonl).",
)
SPOOLED = Counter(
    "mlrec_events_spooled_total",
    "Events written to the local spool because the event log was unavailable.",
)
PENDING = Gauge(
    "mlrec_events_spool_pending",
    "Events in the local spool not yet replayed into the event log.",
    # a process's value is the sum over the spools it holds (its own, and an orphan
    # while it adopts it); several API workers add theirs up, and a worker that is
    # gone no longer counts (its slot's events are counted by whoever adopts it)
    multiprocess_mode="livesum",
)

_FRAME = struct.Struct(">II")
_TOPIC = struct.Struct(">H")
_KEY = struct.Struct(">i")
_SUFFIX = ".spool"
_POS = ".pos"
_DONE = ".done"
REJECTED_FILE = "rejected.jsonl"
# How often the replay thread looks for orphaned spools to adopt.
_ADOPT_INTERVAL_S = 30.0
# How often the replay thread probes the primary while nothing is spooled.
_PROBE_INTERVAL_S = 5.0
# Records replayed per primary call.
_REPLAY_BATCH = 5000


@dataclass(frozen=True, slots=True)
class _Spooled:
    topic: str
    key: bytes | None
    value: bytes
    end: int  # byte offset just after this record's frame


def _encode(topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> bytes:
    t = topic.encode()
    head = _TOPIC.pack(len(t)) + t
    parts: list[bytes] = []
    for key, value in records:
        payload = head + _KEY.pack(-1 if key is None else len(key)) + (key or b"") + value
        parts.append(_FRAME.pack(len(payload), zlib.crc32(payload)))
        parts.append(payload)
    return b"".join(parts)


def read_segment(path: Path, start: int = 0) -> Iterator[_Spooled]:
    """The valid records of a segment from byte ``start``; stops at a torn or corrupt frame."""
    data = path.read_bytes()
    pos = start
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        body = pos + _FRAME.size
        if body + length > len(data):
            log.warning("spool %s: torn frame at byte %d ignored", path.name, pos)
            return
        payload = data[body : body + length]
        if zlib.crc32(payload) != crc:
            log.warning("spool %s: corrupt frame at byte %d ignored", path.name, pos)
            return
        try:
            (tlen,) = _TOPIC.unpack_from(payload, 0)
            topic = payload[2 : 2 + tlen].decode()
            (klen,) = _KEY.unpack_from(payload, 2 + tlen)
            kstart = 2 + tlen + _KEY.size
            key = None if klen < 0 else payload[kstart : kstart + klen]
            value = payload[kstart + max(klen, 0) :]
        except (struct.error, UnicodeDecodeError):
            log.warning("spool %s: malformed frame at byte %d ignored", path.name, pos)
            return
        pos = body + length
        yield _Spooled(topic, key, value, pos)
    if pos < len(data):
        log.warning("spool %s: torn frame header at byte %d ignored", path.name, pos)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DurableProducer:
    """An :class:`EventProducer` that accepts every batch: into ``primary``, or a spool
    while ``primary`` is unavailable (see :meth:`produce`).

    Args:
        primary: the event log (e.g. :class:`~mlrec.backends.kafka.KafkaProducer`).
        spool_dir: directory of the spool; must survive restarts (a volume in k8s).
        retry_interval_s: how long the replay thread waits between attempts while
            the primary is down.
        orphans: other spool directories to adopt when free (see the module
            docstring); called again at each adoption pass.
        close_primary: :meth:`close` also closes ``primary`` (not when it is shared).

    Call :meth:`start` to run the replay thread (it also replays a spool left by a
    previous process) and :meth:`close` to stop it. Without :meth:`start`, call
    :meth:`replay` yourself.

    Example::

        producer = DurableProducer(KafkaProducer(bootstrap), Path("/var/lib/mlrec/spool"))
        producer.start()
        producer.produce("mlrec.interactions", [(b"u1", payload)])  # never lost
    """

    def __init__(
        self,
        primary: EventProducer,
        spool_dir: Path,
        *,
        retry_interval_s: float = 1.0,
        orphans: Callable[[], Iterable[Path]] | None = None,
        close_primary: bool = True,
    ) -> None:
        self.primary = primary
        self.spool_dir = Path(spool_dir)
        self.retry_interval_s = retry_interval_s
        self._orphans = orphans
        self._close_primary = close_primary
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.spool_dir / "LOCK", "a+b")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise ConfigurationError(
                f"spool {self.spool_dir} is in use by another process; give each its own"
            ) from None
        # guards the segment list, the active file, _pending; reentrant: the final drain
        # of a replay holds it while replaying settles records
        self._lock = threading.RLock()
        self._replay_lock = threading.Lock()  # one replayer at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        # ends a replay in progress between two primary calls: this producer's close,
        # or, for an orphan being adopted, its adopter's
        self._interrupt = self._stop
        self._thread: threading.Thread | None = None
        self._active: io.FileIO | None = None
        self._active_path: Path | None = None
        self._primary_failed = False
        # the last probe of the primary failed (see reachable); cleared by a good probe
        # or a replay that went through
        self._primary_down = False
        self._finish_removals()
        numbered = [int(p.stem) for p in self.spool_dir.iterdir() if p.stem.isdigit()]
        self._next_seq = max(numbered, default=0) + 1
        segments = self._segments()
        self._pending = sum(self._count(s) for s in segments)
        # the gauge sums every producer of the process (an adopted orphan is one too):
        # each adds its own changes, none sets the total
        self._in_gauge = True
        PENDING.inc(self._pending)
        if self._pending:
            log.warning("spool %s holds %d events to replay", self.spool_dir, self._pending)

    # -- state ----------------------------------------------------------------------

    def spooled(self) -> int:
        """Events in the spool not yet acknowledged by the primary."""
        return self._pending

    @property
    def degraded(self) -> bool:
        """True while events are spooled, or the primary's last attempt or probe failed."""
        return self._pending > 0 or self._primary_failed or self._primary_down

    def reachable(self) -> bool:
        """Whether the primary answers a quick probe now (changes nothing)."""
        return self.primary.reachable()

    def _probe(self) -> None:
        # the replay thread's probe, while nothing is spooled: after a failed one, events
        # go straight to the spool (no caller waits out a delivery timeout first)
        self._primary_down = not self.primary.reachable()

    def _segments(self) -> list[Path]:
        return sorted(self.spool_dir.glob(f"*{_SUFFIX}"))

    def _finish_removals(self) -> None:
        """Remove what a crash left of replayed segments: ``.done`` files, and
        ``.pos`` files whose segment is gone."""
        for done in self.spool_dir.glob(f"*{_DONE}"):
            done.with_suffix(_POS).unlink(missing_ok=True)
            done.unlink(missing_ok=True)
        for pos in self.spool_dir.glob(f"*{_POS}"):
            if not pos.with_suffix(_SUFFIX).exists():
                pos.unlink(missing_ok=True)

    @staticmethod
    def _acked(segment: Path) -> int:
        try:
            return int(segment.with_suffix(_POS).read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _count(self, segment: Path) -> int:
        return sum(1 for _ in read_segment(segment, self._acked(segment)))

    # -- produce --------------------------------------------------------------------

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Accept ``records``: acknowledged by the primary, or fsync'ed to the spool.

        While nothing is spooled and the last probe found the primary up, they go to
        the primary first: only its :class:`BackendUnavailableError` sends them to the
        spool, a refusal for good is raised as it is (nothing is spooled). Otherwise
        they are spooled without asking the primary (not to overtake spooled events).

        Raises:
            BackendUnavailableError: neither the primary nor the local disk took them.
            ValidationError: the primary refused a record for good (too large,
                malformed; see :meth:`KafkaProducer.produce
                <mlrec.backends.kafka.KafkaProducer.produce>`).
            BackendError: the primary refused the topic for good (authorization).
        """
        if not records:
            return
        if self._pending == 0 and not self._primary_down:
            try:
                self.primary.produce(topic, records)
                self._primary_failed = False
                return
            except BackendUnavailableError as exc:
                self._primary_failed = True
                log.warning("event log unavailable, spooling %d events: %s", len(records), exc)
            self._append(topic, records)
        elif not self._append(topic, records, unless_drained=True):
            self.produce(topic, records)  # the spool drained meanwhile: send directly

    def _direct(self) -> bool:
        """Whether events may go to the primary directly: nothing spooled (events must
        not overtake spooled ones) and the primary healthy as far as is known."""
        return self._pending == 0 and not self._primary_down and not self._primary_failed

    def _append(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes]],
        unless_drained: bool = False,
    ) -> bool:
        """Spool ``records`` (fsync'ed); with ``unless_drained``, only if the spool is
        not drained and healthy by then (False: nothing was appended)."""
        frames = _encode(topic, records)
        with self._lock:
            if unless_drained and self._direct():
                return False
            size = None
            try:
                if self._active is None:
                    path = self.spool_dir / f"{self._next_seq:020d}{_SUFFIX}"
                    self._next_seq += 1
                    # unbuffered: a failed write leaves no bytes behind in a buffer, which
                    # closing (or cutting) the file would try to write out again
                    self._active = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open
                    self._active_path = path
                    _fsync_dir(self.spool_dir)
                size = self._active.tell()
                pending = memoryview(frames)
                while pending:  # a write may take part of it (disk full: the next fails)
                    pending = pending[self._active.write(pending) :]
                os.fsync(self._active.fileno())
            except OSError as exc:
                self._drop_failed_append(size)
                raise BackendUnavailableError(
                    f"event log unavailable and the spool {self.spool_dir} cannot be written: {exc}"
                ) from exc
            self._add_pending(len(records))
        SPOOLED.inc(len(records))
        self._wake.set()
        return True

    def _drop_failed_append(self, size: int | None) -> None:
        """After a failed append (disk full, I/O error): cut its partial frames off and
        close the segment, so later appends go to a new one: a torn frame would hide
        every record after it. Called with ``_lock`` held."""
        active, self._active, self._active_path = self._active, None, None
        if active is None:
            return
        try:
            if size is not None:
                active.truncate(size)
                os.fsync(active.fileno())
        except OSError:
            log.warning("could not cut a failed append off %s; its tail is ignored", active.name)
        finally:
            try:
                active.close()
            except OSError:
                log.debug("closing a failed spool segment failed", exc_info=True)

    # -- replay ---------------------------------------------------------------------

    def _seal(self) -> None:
        """Close the active segment so the replayer owns it; new appends start another."""
        with self._lock:
            if self._active is not None:
                self._active.close()
                self._active = None
                self._active_path = None

    def replay(self) -> int:
        """Send the spool to the primary, oldest first; returns how many were replayed.

        Stops at the first failure (the rest stays spooled, nothing is skipped), but
        a record the primary refuses for good is set aside in ``rejected.jsonl`` and
        replay goes on (see the module docstring). Also stops after the primary call in
        flight once :meth:`close` was called: the rest is replayed at the next start.
        """
        with self._replay_lock:
            self._seal()
            done = [0]
            try:
                for segment in self._segments():
                    with self._lock:
                        if segment == self._active_path:
                            break
                    if not self._replay_segment(segment, done):
                        log.info(
                            "spool replay stopped by close(): %d events left in %s",
                            self._pending,
                            self.spool_dir,
                        )
                        return done[0]
                # Events kept arriving (spooled, so as not to overtake): send the few
                # spooled meanwhile with appends held, so the spool ends empty and new
                # events go directly again. Otherwise, under steady traffic, every
                # event would go through the spool for as long as the traffic lasts.
                with self._lock:
                    if 0 < self._pending <= _REPLAY_BATCH:
                        self._seal()
                        for segment in self._segments():
                            self._replay_segment(segment, done)
            except BackendError as exc:  # unavailable, or refusing all of us
                self._primary_failed = True
                log.info("spool replay paused, event log unavailable or refusing: %s", exc)
                return done[0]
            self._primary_failed = False
            if done[0]:
                self._primary_down = False  # the primary took records: it is back
            return done[0]

    def _replay_segment(self, segment: Path, done: list[int]) -> bool:
        """Replay one sealed segment, counting records acknowledged in ``done[0]``;
        False if :meth:`close` interrupted it (its position is saved)."""
        acked = self._acked(segment)
        batch: list[_Spooled] = []

        def send() -> None:
            # One primary call per run of records of the same topic, in order; the
            # acknowledged position is persisted after each, so a failure (or a crash)
            # resumes right after what the primary took.
            start = 0
            for i in range(1, len(batch) + 1):
                if i == len(batch) or batch[i].topic != batch[start].topic:
                    run = batch[start:i]
                    try:
                        self.primary.produce(run[0].topic, [(r.key, r.value) for r in run])
                    except ValidationError:
                        # some record is refused for good (Kafka fails its neighbours in
                        # the same request too): one at a time, setting aside the refused
                        self._send_one_by_one(segment, run, done)
                    else:
                        self._save_position(segment, run[-1].end)
                        self._settled(len(run))
                        done[0] += len(run)
                    start = i
            batch.clear()

        for record in read_segment(segment, acked):
            # Between primary calls: a backlog of an outage's worth would otherwise keep
            # close(), and so the process's shutdown, waiting until all of it is sent.
            if self._interrupt.is_set():
                return False
            batch.append(record)
            if len(batch) >= _REPLAY_BATCH:
                send()
        if batch:
            send()
        # Everything (up to any torn tail) is in the primary: drop the segment. Renamed
        # first, so a crash part-way cannot leave a .pos that a later segment of the
        # same number would inherit (nor replay the segment again).
        done_path = segment.with_suffix(_DONE)
        os.replace(segment, done_path)
        _fsync_dir(self.spool_dir)
        segment.with_suffix(_POS).unlink(missing_ok=True)
        done_path.unlink()
        _fsync_dir(self.spool_dir)
        if done[0]:
            log.info("replayed %d spooled events from %s", done[0], segment.name)
        return True

    def _send_one_by_one(self, segment: Path, run: list[_Spooled], done: list[int]) -> None:
        for record in run:
            try:
                self.primary.produce(record.topic, [(record.key, record.value)])
                done[0] += 1
            except ValidationError as exc:
                self._reject(record, str(exc))
            self._save_position(segment, record.end)
            self._settled(1)

    def _settled(self, n: int) -> None:
        with self._lock:
            self._add_pending(-n)

    def _add_pending(self, n: int) -> None:
        """Move :attr:`_pending` and this producer's part of the gauge by ``n``; called
        with ``_lock`` held."""
        self._pending += n
        if self._in_gauge:
            PENDING.inc(n)

    def _reject(self, record: _Spooled, error: str) -> None:
        """Keep a record the log refuses for good beside the spool, out of replay."""
        line = json.dumps(
            {
                "topic": record.topic,
                "key_b64": None if record.key is None else base64.b64encode(record.key).decode(),
                "value_b64": base64.b64encode(record.value).decode(),
                "error": error,
                "rejected_at": time.time(),
            }
        )
        with open(self.spool_dir / REJECTED_FILE, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        REJECTED.inc()
        log.error(
            "the event log refused a spooled record for good (%s); kept in %s",
            error,
            self.spool_dir / REJECTED_FILE,
        )

    @staticmethod
    def _save_position(segment: Path, acked: int) -> None:
        tmp = segment.with_suffix(".pos.tmp")
        with open(tmp, "w") as f:
            f.write(str(acked))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, segment.with_suffix(_POS))

    def adopt_orphans(self) -> int:
        """Replay the spools of :attr:`orphans` that no process holds; returns how many
        events were replayed. A spool still in use is left to its owner."""
        if self._orphans is None:
            return 0
        replayed = 0
        for directory in self._orphans():
            if Path(directory).resolve() == self.spool_dir.resolve():
                continue
            try:
                orphan = DurableProducer(self.primary, directory, close_primary=False)
            except ConfigurationError:
                continue  # a live process owns it
            orphan._interrupt = self._stop
            try:
                if orphan.spooled() or orphan._segments_waiting():
                    these = orphan.replay()
                    replayed += these
                    log.info("adopted the spool %s: %d events replayed", directory, these)
            except Exception:  # one broken spool must not keep the others waiting
                log.exception("replaying the orphaned spool %s failed; retrying later", directory)
            finally:
                orphan.close()
        return replayed

    def _run(self) -> None:
        next_adoption = next_probe = 0.0
        while not self._stop.is_set():
            if self._pending == 0 and time.monotonic() >= next_probe:
                self._probe()  # notice an outage before a client waits on it
                next_probe = time.monotonic() + _PROBE_INTERVAL_S
            if self._orphans is not None and time.monotonic() >= next_adoption:
                try:
                    self.adopt_orphans()
                except Exception:  # never let adoption stop our own replay
                    log.exception("adopting orphaned spools failed; retrying later")
                next_adoption = time.monotonic() + _ADOPT_INTERVAL_S
            if self._pending > 0 or self._segments_waiting():
                try:
                    self.replay()
                except Exception:  # keep the thread alive: the spool is the safety net
                    # e.g. the disk is full and the acknowledged position cannot be saved:
                    # each attempt sends the same records again, so never retry at once
                    log.exception("spool replay failed; retrying in %.1f s", self.retry_interval_s)
                    self._stop.wait(self.retry_interval_s)
                    continue
                if self._pending > 0:
                    if self._primary_failed:  # else it made progress: go on at once
                        self._stop.wait(self.retry_interval_s)
                    continue
            self._wake.wait(self.retry_interval_s)
            self._wake.clear()

    def _segments_waiting(self) -> bool:
        # Segments holding only a torn tail count 0 events but still need removing.
        with self._lock:
            return any(s != self._active_path for s in self._segments())

    def start(self) -> None:
        """Start the replay thread (it replays what a previous process left first)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mlrec-spool", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop replaying and close the primary; unsent events stay in the spool."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._seal()
        with self._lock:  # what is left is counted by the spool's next holder
            if self._in_gauge:
                PENDING.dec(self._pending)
                self._in_gauge = False
        if self._close_primary:
            self.primary.close()
        self._lock_file.close()
