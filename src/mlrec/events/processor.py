"""The stream processor: consume interaction events, apply them, then commit.

At-least-once: offsets are committed only after the sink applied the batch, so a
crash redelivers; the sink dedups by ``event_id`` so redelivery is harmless.
Records that are not valid events go to the dead-letter topic with the error, and
are committed too (they would fail forever otherwise).

Pipelined (``pipeline=True``, what the services run): while the sink applies batch
N in a worker thread (mostly waiting on the feature store), the next batch is polled,
decoded and, for a :class:`StagedSink`, prepared; batch N's offsets are committed,
exactly up to its own records, once its apply returned. A failed apply is raised by
the next :meth:`StreamProcessor.run_once`, and :meth:`StreamProcessor.run` rewinds to
the last commit, so that batch and the one polled behind it are both redelivered. It
polls nothing more until a rewind succeeded (it retries the rewind with the back-off):
polling on from the position the failed batches moved the consumer to would skip them,
and the next commit would move the group past them for good.

Redelivery and the dedup window: a redelivery (a crash or a failed commit; a consumer
that lost its partition or lease while its batch was still being applied) re-sends at
most two polled batches, ``2 * max_batch`` records, all of which may already have been
applied. The sink recognises a redelivered event only while its id is among the
user's latest ``dedup_window`` ids (:class:`~mlrec.features.realtime.RealtimeConfig`),
so the rule is ``2 * max_batch <= dedup_window``: a processor whose sink says how
large its window is (:class:`WindowedSink`, as the real-time sink does) refuses a
``max_batch`` that breaks it with :class:`~mlrec.core.errors.ConfigurationError`.

Lag (the ``mlrec_stream_consumer_lag_records`` gauge) is measured by the polling
thread itself, at most every ``lag_interval`` seconds: a consumer is not thread-safe
(Kafka's serialises its calls, so a side thread asking it starves while the loop
polls). A :class:`CachedLag` consumer (Kafka) answers from what polling already
taught it, with no round trip; any other consumer is asked :meth:`EventConsumer.lag`
(the embedded log's is a local query).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Protocol, runtime_checkable

from prometheus_client import Counter, Gauge, Histogram

from mlrec.core.errors import BackendUnavailableError, ConfigurationError
from mlrec.events.log import DLQ_TOPIC, EventConsumer, EventProducer, LogRecord
from mlrec.events.schemas import InteractionEvent
from mlrec.events.serde import EventDecodeError, decode_events

__all__ = [
    "CachedLag",
    "ProcessorStats",
    "StagedSink",
    "StreamProcessor",
    "WindowedSink",
    "max_redelivery",
]

log = logging.getLogger(__name__)

EVENTS = Counter(
    "mlrec_stream_events_total",
    "Records handled by the stream processor, by outcome (applied, duplicate, dead_letter).",
    ["outcome"],
)
LAG = Gauge(
    "mlrec_stream_consumer_lag_records",
    "Records not yet consumed by the group.",
    # API workers each run an embedded processor of one group, one reading at a time:
    # the others' consumers stand where they last read (or started), so their lag only
    # overstates the group's. One series, the most advanced worker's, of live workers.
    multiprocess_mode="livemin",
)
BATCH_SECONDS = Histogram(
    "mlrec_stream_batch_duration_seconds",
    "Time to apply and commit one polled batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

OUTCOMES = ("applied", "duplicate", "dead_letter")
"""The ``outcome`` label values of ``mlrec_stream_events_total``."""

Sink = Callable[[Sequence[InteractionEvent]], int]
"""Applies events (idempotently by event_id) and returns how many were new."""


@runtime_checkable
class StagedSink(Protocol):
    """A sink whose work splits into CPU (``prepare``) and I/O (``apply``).

    The pipelined processor prepares batch N+1 on its own thread while batch N is
    applied, so the store does not wait for Python between batches.
    """

    def prepare(self, events: Sequence[InteractionEvent]) -> object:
        """Convert/encode a batch; no I/O."""
        ...

    def apply(self, prepared: object) -> int:
        """Apply a prepared batch; how many events were new."""
        ...


@runtime_checkable
class WindowedSink(Protocol):
    """A sink that recognises a redelivered event only within a bounded window."""

    @property
    def dedup_window(self) -> int:
        """How many of one user's latest event ids the sink remembers."""
        ...


@runtime_checkable
class CachedLag(Protocol):
    """A consumer that knows its lag without a round trip to the log.

    The processor asks it from the polling loop, so it must be cheap: no I/O.
    """

    def cached_lag(self) -> int | None:
        """Records not yet consumed, as of what the consumer last learnt while
        polling; None while it knows nothing (the gauge then keeps its value)."""
        ...


def max_redelivery(max_batch: int) -> int:
    """The most records a restart or a rewind can redeliver that were already applied.

    Two polled batches: pipelined, a crash leaves the batch being applied and the one
    polled behind it uncommitted; and a consumer that lost its partition (or lease)
    while it applied a batch may apply it while its successor applies it again.
    """
    return 2 * max_batch


@dataclass(frozen=True)
class _Batch:
    """A polled batch being applied in the worker (pipelined mode)."""

    records: list[LogRecord]
    events: int
    dead_letters: int
    future: Future[tuple[int, float]] | None
    prepare_seconds: float


@dataclass
class ProcessorStats:
    """Running totals since start."""

    records: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0


# Payload bytes a dead letter carries: base64 of more would approach the log's record
# limit (Kafka's 1 MB default), and a dead letter the log refuses would stop the
# processor on that batch for good. The record's position says where the rest is.
DEAD_LETTER_PAYLOAD_BYTES = 256 * 1024
# Key bytes a dead letter keeps, for the same reason: the limit counts the key too, and
# a record's key may take nearly all of it (a user id is at most 256 bytes).
DEAD_LETTER_KEY_BYTES = 1024


def _dead_letter(record: LogRecord, error: str) -> tuple[bytes | None, bytes]:
    """The dead letter of ``record``: its key (cut) and a JSON body saying why."""
    key = None if record.key is None else record.key[:DEAD_LETTER_KEY_BYTES]
    payload = record.value[:DEAD_LETTER_PAYLOAD_BYTES]
    return key, json.dumps(
        {
            "error": error[:2000],
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "payload_bytes": len(record.value),
            "payload_truncated": len(payload) < len(record.value),
            "payload_b64": base64.b64encode(payload).decode(),
        }
    ).encode()


class StreamProcessor:
    """Polls a consumer, applies events through ``sink``, dead-letters bad records.

    Args:
        consumer: subscribed to ``mlrec.interactions`` in the processor's group.
        sink: applies a batch (e.g. ``RealtimeFeatures.record``), returns new count.
        dead_letters: producer for ``mlrec.interactions.dlq``.
        max_batch: records per poll. A redelivery re-sends up to
            :func:`max_redelivery` records, so it must be at most half the sink's
            ``dedup_window`` when the sink has one (:class:`WindowedSink`).
        poll_timeout: longest a poll waits to fill a batch (bounds the latency a quiet
            stream adds before an event is applied).
        pipeline: apply each batch in a worker thread while the next one is polled
            and decoded.
        lag_interval: seconds between two measurements of the lag gauge, taken
            between polls (see :class:`CachedLag`).

    Raises:
        ConfigurationError: ``max_batch`` is below 1, or so large that a redelivery
            would exceed the sink's dedup window (events would count twice).
    """

    def __init__(
        self,
        consumer: EventConsumer,
        sink: Sink,
        dead_letters: EventProducer,
        max_batch: int = 1000,
        poll_timeout: float = 0.01,
        pipeline: bool = False,
        lag_interval: float = 1.0,
    ) -> None:
        if max_batch < 1:
            raise ConfigurationError(f"max_batch must be at least 1, got {max_batch}")
        if isinstance(sink, WindowedSink) and max_redelivery(max_batch) > sink.dedup_window:
            raise ConfigurationError(
                f"max_batch {max_batch} is too large for the sink's dedup window of "
                f"{sink.dedup_window} event ids per user: a redelivery re-sends up to "
                f"{max_redelivery(max_batch)} records (two batches), and those beyond the "
                f"window would be applied twice; use max_batch <= {sink.dedup_window // 2} "
                "or raise RealtimeConfig.dedup_window"
            )
        self.consumer = consumer
        self.sink = sink
        self.dead_letters = dead_letters
        self.max_batch = max_batch
        self.poll_timeout = poll_timeout
        self.stats = ProcessorStats()
        self.lag_interval = lag_interval
        self._stop = threading.Event()
        self._measure: Callable[[], int | None] = (
            consumer.cached_lag if isinstance(consumer, CachedLag) else consumer.lag
        )
        self._next_lag_at = 0.0
        self._applier = (
            ThreadPoolExecutor(1, thread_name_prefix="stream-apply") if pipeline else None
        )
        self._in_flight: _Batch | None = None
        for outcome in OUTCOMES:  # every series exists (at 0) before the first batch
            EVENTS.labels(outcome)

    def run_once(self) -> int:
        """Poll one batch, apply it, commit; returns the number of records handled.

        Pipelined, the batch is handed to the worker once the previous one is applied
        and committed, and a quiet poll completes whatever is in flight.
        """
        records = self.consumer.poll(self.max_batch, self.poll_timeout)
        self._update_lag()
        if not records:
            self.finish()
            return 0
        started = time.perf_counter()
        events: list[InteractionEvent] = []
        bad: list[tuple[bytes | None, bytes]] = []
        decoded = decode_events([record.value for record in records])
        for record, result in zip(records, decoded, strict=True):
            if isinstance(result, EventDecodeError):
                bad.append(_dead_letter(record, str(result)))
            else:
                events.append(result)
        if bad:
            self.dead_letters.produce(DLQ_TOPIC, bad)
        if self._applier is None:
            applied = self.sink(events) if events else 0
            self._account(records, len(events), applied, len(bad))
            self.consumer.commit()
            BATCH_SECONDS.observe(time.perf_counter() - started)
            return len(records)
        job: Callable[[], int] | None = None
        if events and isinstance(self.sink, StagedSink):
            job = partial(self.sink.apply, self.sink.prepare(events))  # overlaps the apply
        elif events:
            job = partial(self.sink, events)
        prepared = time.perf_counter() - started
        self.finish()
        future = self._applier.submit(_timed, job) if job is not None else None
        self._in_flight = _Batch(records, len(events), len(bad), future, prepared)
        return len(records)

    def finish(self) -> None:
        """Wait for the batch in flight (pipelined mode), count it and commit it.

        Raises:
            Exception: whatever the sink raised for it (nothing is committed then).
        """
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return
        applied, apply_seconds = batch.future.result() if batch.future is not None else (0, 0.0)
        self._account(batch.records, batch.events, applied, batch.dead_letters)
        committing = time.perf_counter()
        self.consumer.commit(through=batch.records)
        # its own work only: not the wait for the previous batch, nor the next poll
        BATCH_SECONDS.observe(
            batch.prepare_seconds + apply_seconds + time.perf_counter() - committing
        )

    def _account(self, records: list[LogRecord], events: int, applied: int, bad: int) -> None:
        # counted as soon as applied: if the commit fails, the redelivered batch is
        # skipped as duplicates, and the totals must still add up
        self.stats.records += len(records)
        self.stats.applied += applied
        self.stats.duplicates += events - applied
        self.stats.dead_letters += bad
        self.stats.batches += 1
        EVENTS.labels("applied").inc(applied)
        EVENTS.labels("duplicate").inc(events - applied)
        EVENTS.labels("dead_letter").inc(bad)

    def _update_lag(self) -> None:
        # Between polls, in the polling thread (the consumer is not thread-safe), and
        # at most every lag_interval: a clock read per batch, nothing per record.
        now = time.monotonic()
        if now < self._next_lag_at:
            return
        self._next_lag_at = now + self.lag_interval
        try:
            lag = self._measure()
        except Exception:  # lag is best effort: never stop processing for it
            log.debug("lag check failed", exc_info=True)
            return
        if lag is not None:
            LAG.set(lag)

    def run(self, retry_delay: float = 1.0) -> None:
        """Process until :meth:`stop`; on a failing sink or log, back off and retry.

        Nothing is committed for a failed batch and the consumer is rewound to the
        last commit, so the batch is redelivered rather than skipped. Until a rewind
        succeeded (it is retried every ``retry_delay``), nothing more is polled: the
        consumer's position is past the failed batch and the one polled behind it.
        The lag gauge is updated between polls (see :attr:`lag_interval`). Each failed
        attempt logs a line; once a batch is applied and committed again, one line
        says the processor recovered and after how long. A failure that is not an
        outage logs its traceback once per failing streak, then one line per attempt.
        """
        rewind_needed = False
        failures = 0
        last_error: str | None = None  # of this failing streak
        failing_since = 0.0
        batches_before = 0
        while not self._stop.is_set():
            if failures and self.stats.batches > batches_before:
                log.info(
                    "stream processor recovered: batches are applied and committed again "
                    "(after %d failed attempts over %.1f s)",
                    failures,
                    time.monotonic() - failing_since,
                )
                failures, last_error = 0, None
            if rewind_needed:
                try:
                    self.consumer.rewind()
                except Exception as exc:
                    _log_failure(
                        exc,
                        last_error,
                        "could not rewind the consumer; polling waits, retrying in %.1f s",
                        retry_delay,
                    )
                    last_error = repr(exc)
                    self._stop.wait(retry_delay)
                    continue
                rewind_needed = False
            try:
                self.run_once()
            except Exception as exc:
                _log_failure(
                    exc,
                    last_error,
                    "stream processor batch failed; retrying in %.1f s",
                    retry_delay,
                )
                last_error = repr(exc)
                if not failures:
                    failing_since = time.monotonic()
                failures += 1
                batches_before = self.stats.batches
                self._drop_in_flight()
                rewind_needed = True
                self._stop.wait(retry_delay)
        try:
            self.finish()  # nothing is in flight if the last batch failed
        except Exception:
            log.exception("the last batch failed; it will be redelivered")

    def _drop_in_flight(self) -> None:
        # after a failure everything uncommitted is redelivered: forget the batch, but
        # let its apply end before the rewind (it may still be writing)
        batch, self._in_flight = self._in_flight, None
        if batch is not None and batch.future is not None:
            try:
                applied, _ = batch.future.result()
            except Exception:
                log.debug("in-flight batch failed too", exc_info=True)
                return
            # its events are in the store: redelivered, they count as duplicates
            self.stats.applied += applied
            EVENTS.labels("applied").inc(applied)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch."""
        self._stop.set()


def _timed(job: Callable[[], int]) -> tuple[int, float]:
    """``job()`` and the seconds it took (run in the applier thread)."""
    started = time.perf_counter()
    return job(), time.perf_counter() - started


def _log_failure(exc: Exception, previous: str | None, message: str, *args: object) -> None:
    """An outage (a broker restarting, Redis away) is expected and retried: one line
    with its reason; anything else is a defect worth its traceback, once (``previous``:
    the failure before this one, as ``repr``): retried every second, a refusal that
    lasts (say, a dead-letter topic we may not write) buried the log in tracebacks."""
    if isinstance(exc, BackendUnavailableError) or repr(exc) == previous:
        log.warning(message + ": %s", *args, exc)
    else:
        log.exception(message, *args)
