"""``mlrec serve stream`` as an operator runs it: stopped by SIGTERM or SIGINT after the
batch in flight is committed, bad options and unreachable servers reported in one line
before anything starts."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from mlrec.backends import factory
from mlrec.backends.factory import EventLog
from mlrec.cli import app
from mlrec.cli.serve import GracefulShutdown
from mlrec.core.errors import BackendUnavailableError
from mlrec.events import INTERACTIONS_TOPIC, EventConsumer, LogRecord, encode_event, event_key
from mlrec.events.schemas import InteractionEvent
from tests.unit.cli.running import runner
from tests.unit.cli.test_cli_errors import run_failing
from tests.unit.events.consumers import DelegatingConsumer

GROUP = "mlrec-stream"  # the command's default group
OPEN_EVENT_LOG = factory.open_event_log  # the real one: tests patch the factory's


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(autouse=True)
def embedded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The embedded log and feature store; the signal handlers put back afterwards."""
    for name in ("MLREC_KAFKA_BOOTSTRAP_SERVERS", "MLREC_REDIS_URL", "MLREC_KAFKA_PARTITIONS"):
        monkeypatch.delenv(name, raising=False)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


class NeverStoppedError(BaseException):
    """Raised by :class:`SignalMidStream` when the processor polls on and on after the
    signal: it was not handled (a BaseException, so the processor's retry loop does not
    swallow it)."""


class SignalMidStream(DelegatingConsumer):
    """Sends ``signum`` to this process on the poll after the first batch, while that
    batch is in flight (applied in the processor's worker, not committed yet)."""

    def __init__(self, inner: EventConsumer, signum: int) -> None:
        super().__init__(inner)
        self.signum = signum
        self.polled: list[LogRecord] = []
        self.sent = False
        self.polls_after = 0

    def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
        if self.sent:
            self.polls_after += 1
            if self.polls_after > 500:
                raise NeverStoppedError
        records = self.inner.poll(max_records, timeout_seconds)
        if records and self.polled and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)
        self.polled += records
        return records


def produce(data_dir: Path, n: int) -> set[tuple[int, int]]:
    """``n`` events on the embedded log; their (partition, offset)s."""
    log = OPEN_EVENT_LOG(None, data_dir / "events.db")
    log.ensure_topics()
    producer = log.producer()
    events = [
        InteractionEvent(user_id=f"u{i % 7}", item_id=f"i{i}", event_id=f"e{i}", timestamp=1e9)
        for i in range(n)
    ]
    producer.produce(INTERACTIONS_TOPIC, [(event_key(e), encode_event(e)) for e in events])
    producer.close()
    return uncommitted(data_dir)


def uncommitted(data_dir: Path) -> set[tuple[int, int]]:
    """The records the group has not committed, read by a consumer of the group."""
    log = OPEN_EVENT_LOG(None, data_dir / "events.db")
    consumer = log.consumer(GROUP, [INTERACTIONS_TOPIC])
    found: set[tuple[int, int]] = set()
    try:
        while records := consumer.poll(1000, 0.05):
            found.update((r.partition, r.offset) for r in records)
    finally:
        consumer.close()
    return found


@pytest.mark.parametrize("inherited", ["default", "ignored"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_stream_stops_it_after_committing_the_batch_in_flight(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, signum: int, inherited: str
) -> None:
    # Regression (ops audit): Ctrl-C raised KeyboardInterrupt wherever the loop was, so
    # the batch in flight was applied but never committed (redelivered as duplicates
    # at the next start); and a processor started with SIGINT ignored (in the
    # background of a script) did not stop on SIGINT at all.
    records = produce(data_dir, 300)
    opened: list[SignalMidStream] = []

    def open_event_log(bootstrap: str | None, path: Path, partitions: int = 6) -> EventLog:
        log = OPEN_EVENT_LOG(bootstrap, path, partitions)
        real_consumer = log.consumer

        def consumer(group_id: str, topics: Sequence[str]) -> EventConsumer:
            opened.append(SignalMidStream(real_consumer(group_id, topics), signum))
            return opened[-1]

        monkeypatch.setattr(log, "consumer", consumer)
        return log

    monkeypatch.setattr(factory, "open_event_log", open_event_log)
    if inherited == "ignored":
        signal.signal(signum, signal.SIG_IGN)

    result = runner.invoke(
        app, ["serve", "stream", "--metrics-port", str(free_port()), "--max-batch", "50"]
    )

    assert result.exit_code == 0, (result.output, result.exception)
    [consumer] = opened
    assert consumer.sent
    polled = {(r.partition, r.offset) for r in consumer.polled}
    assert len(polled) < len(records)  # it stopped mid-stream
    assert uncommitted(data_dir) == records - polled  # everything it read is committed
    assert f"applied {len(polled)}, duplicates 0" in result.output


def test_max_batch_beyond_the_dedup_window_is_refused_naming_the_option_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (ops audit): found only after the topics were created and the consumer
    # opened (half a minute when Kafka is unreachable), worded as max_batch and
    # RealtimeConfig.dedup_window, which the command line does not show.
    opened: list[str] = []
    monkeypatch.setattr(factory, "open_event_log", lambda *_a, **_k: opened.append("log"))

    err = run_failing(["serve", "stream", "--max-batch", "5001"], capsys)

    assert "--max-batch 5001 is too large" in err and "at most 5000" in err
    assert opened == []


def test_a_busy_metrics_port_is_reported_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(factory, "open_event_log", lambda *_a, **_k: opened.append("log"))
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = run_failing(["serve", "stream", "--metrics-port", str(port)], capsys)

    assert f"cannot serve metrics on port {port} (--metrics-port)" in err
    assert opened == []


class UnreachableKafka:
    is_kafka = True

    def ensure_topics(self, *_args: Any, **_kwargs: Any) -> None:
        raise BackendUnavailableError(
            "could not create Kafka topics ['mlrec.interactions']: "
            "no answer from 127.0.0.1:1 within 30 s"
        )


def test_an_unreachable_kafka_at_start_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(factory, "open_event_log", lambda *_a, **_k: UnreachableKafka())

    err = run_failing(["serve", "stream", "--metrics-port", str(free_port())], capsys)

    assert "no answer from 127.0.0.1:1" in err and "(MLREC_KAFKA_BOOTSTRAP_SERVERS)" in err


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_signal_asks_a_stop_and_the_wait_gives_up_past_the_deadline() -> None:
    stops: list[int] = []
    clock = FakeClock()
    shutdown = GracefulShutdown(lambda: stops.append(1), timeout_s=10.0, clock=clock)
    blocked = threading.Event()
    worker = threading.Thread(target=blocked.wait, daemon=True)  # a commit that hangs
    worker.start()
    try:
        shutdown.handle(signal.SIGTERM)
        assert stops == [1] and shutdown.deadline == 110.0
        clock.now = 110.0
        assert shutdown.wait(worker, poll_s=0.001) is False
    finally:
        blocked.set()
        worker.join()
    assert shutdown.wait(worker) is True


def test_a_second_signal_exits_at_once_with_the_default_disposition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raised: list[tuple[int, Any]] = []
    monkeypatch.setattr(signal, "raise_signal", lambda s: raised.append((s, signal.getsignal(s))))
    shutdown = GracefulShutdown(lambda: None, timeout_s=10.0, clock=time.monotonic)
    shutdown.install()
    try:
        shutdown.handle(signal.SIGINT)
        assert raised == []
        shutdown.handle(signal.SIGINT)
        assert raised == [(signal.SIGINT, signal.SIG_DFL)]
    finally:
        shutdown.done()
