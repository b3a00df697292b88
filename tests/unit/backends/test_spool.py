"""DurableProducer: an accepted event is never lost, whatever the event log does."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mlrec.backends import spool
from mlrec.backends.spool import DurableProducer
from mlrec.core.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    ValidationError,
)
from tests.polling import wait_for

TOPIC = "mlrec.interactions"


class FlakyLog:
    """A primary event log that can be switched off."""

    def __init__(self) -> None:
        self.down = False
        self.records: list[tuple[str, bytes | None, bytes]] = []
        self.calls = 0
        self.closed = False
        self.lock = threading.Lock()

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        with self.lock:
            self.calls += 1
            if self.down:
                raise BackendUnavailableError("log is down")
            self.records.extend((topic, k, v) for k, v in records)

    def reachable(self) -> bool:
        return not self.down

    def close(self) -> None:
        self.closed = True

    def values(self) -> list[bytes]:
        return [v for _, _, v in self.records]


def batch(start: int, n: int) -> list[tuple[bytes | None, bytes]]:
    return [
        (f"u{i % 3}".encode() if i % 4 else None, f"e{i}".encode()) for i in range(start, start + n)
    ]


@pytest.fixture
def primary() -> FlakyLog:
    return FlakyLog()


@pytest.fixture
def producer(primary: FlakyLog, tmp_path: Path) -> Iterator[DurableProducer]:
    producer = DurableProducer(primary, tmp_path / "spool", retry_interval_s=0.02)
    yield producer
    producer.close()


def test_records_go_straight_to_primary_when_it_is_up(
    producer: DurableProducer, primary: FlakyLog
) -> None:
    producer.produce(TOPIC, batch(0, 3))

    assert primary.values() == [b"e0", b"e1", b"e2"]
    assert producer.spooled() == 0
    assert not producer.degraded


def test_records_are_accepted_and_spooled_when_primary_is_down(
    producer: DurableProducer, primary: FlakyLog
) -> None:
    primary.down = True

    producer.produce(TOPIC, batch(0, 3))
    producer.produce(TOPIC, batch(3, 2))

    assert producer.spooled() == 5
    assert producer.degraded
    assert primary.records == []
    assert primary.calls == 1  # once spooling, later batches queue behind the spool


def test_spool_is_replayed_in_order_exactly_once_when_primary_returns(
    producer: DurableProducer, primary: FlakyLog
) -> None:
    primary.down = True
    producer.produce(TOPIC, batch(0, 5))
    producer.produce("other.topic", batch(5, 2))
    producer.produce(TOPIC, batch(7, 3))
    producer.start()
    time.sleep(0.1)
    assert primary.records == []

    primary.down = False
    wait_for(lambda: producer.spooled() == 0, 5.0, interval_s=0.01)
    producer.produce(TOPIC, batch(10, 2))

    assert primary.values() == [f"e{i}".encode() for i in range(12)]
    assert [t for t, _, _ in primary.records[5:7]] == ["other.topic"] * 2
    assert [k for _, k, _ in primary.records[:10]] == [k for k, _ in batch(0, 10)]
    assert not producer.degraded
    assert list((producer.spool_dir).glob("*.spool")) == []


def test_events_accepted_during_replay_follow_the_spooled_ones(
    producer: DurableProducer, primary: FlakyLog
) -> None:
    primary.down = True
    producer.produce(TOPIC, batch(0, 50))
    producer.start()
    primary.down = False
    for start in range(50, 100, 10):
        producer.produce(TOPIC, batch(start, 10))
    wait_for(lambda: producer.spooled() == 0, 5.0, interval_s=0.01)

    assert primary.values() == [f"e{i}".encode() for i in range(100)]


def test_spool_is_replayed_when_a_new_process_starts_on_it(
    primary: FlakyLog, tmp_path: Path
) -> None:
    primary.down = True
    first = DurableProducer(primary, tmp_path / "spool")
    first.produce(TOPIC, batch(0, 4))
    first.close()  # the process exits with events spooled
    primary.down = False

    second = DurableProducer(primary, tmp_path / "spool", retry_interval_s=0.02)
    assert second.spooled() == 4
    second.start()
    wait_for(lambda: second.spooled() == 0, 5.0, interval_s=0.01)
    second.close()

    assert primary.values() == [b"e0", b"e1", b"e2", b"e3"]


def test_torn_tail_is_ignored_when_the_last_write_was_cut_short(
    primary: FlakyLog, tmp_path: Path
) -> None:
    primary.down = True
    first = DurableProducer(primary, tmp_path / "spool")
    first.produce(TOPIC, batch(0, 3))
    first.produce(TOPIC, batch(3, 1))
    first.close()
    [segment] = (tmp_path / "spool").glob("*.spool")
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # a crash in the middle of the last frame
    primary.down = False

    second = DurableProducer(primary, tmp_path / "spool")
    assert second.spooled() == 3
    assert second.replay() == 3
    second.produce(TOPIC, batch(4, 1))
    second.close()

    assert primary.values() == [b"e0", b"e1", b"e2", b"e4"]
    assert list((tmp_path / "spool").glob("*.spool")) == []


def test_corrupt_frame_ends_the_segment_when_checksum_does_not_match(
    primary: FlakyLog, tmp_path: Path
) -> None:
    primary.down = True
    first = DurableProducer(primary, tmp_path / "spool")
    first.produce(TOPIC, batch(0, 1))
    first.produce(TOPIC, batch(1, 1))
    first.close()
    [segment] = (tmp_path / "spool").glob("*.spool")
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    primary.down = False

    second = DurableProducer(primary, tmp_path / "spool")
    assert second.replay() == 1
    second.close()

    assert primary.values() == [b"e0"]


def test_replay_resumes_after_the_acknowledged_part_when_interrupted(
    primary: FlakyLog, tmp_path: Path
) -> None:
    class FailsSecondCall(FlakyLog):
        def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
            if self.calls == 1 and not self.down:
                self.calls += 1
                raise BackendUnavailableError("went away again")
            super().produce(topic, records)

    log = FailsSecondCall()
    log.down = True
    producer = DurableProducer(log, tmp_path / "spool")
    producer.produce(TOPIC, batch(0, 2))
    producer.produce("other.topic", batch(2, 2))  # a second primary call on replay
    log.down = False
    log.calls = 0

    assert producer.replay() == 2
    assert producer.spooled() == 2
    producer.close()
    reopened = DurableProducer(log, tmp_path / "spool")
    assert reopened.spooled() == 2
    assert reopened.replay() == 2
    reopened.close()

    assert log.values() == [b"e0", b"e1", b"e2", b"e3"]


def test_second_producer_is_refused_when_the_spool_is_in_use(
    producer: DurableProducer, primary: FlakyLog
) -> None:
    with pytest.raises(ConfigurationError, match="in use"):
        DurableProducer(primary, producer.spool_dir)


def test_produce_raises_unavailable_when_spool_cannot_be_written(
    producer: DurableProducer, primary: FlakyLog
) -> None:
    primary.down = True
    shutil.rmtree(producer.spool_dir)
    producer.spool_dir.write_text("not a directory any more")

    with pytest.raises(BackendUnavailableError, match="spool"):
        producer.produce(TOPIC, batch(0, 1))
    assert producer.spooled() == 0


def test_close_closes_the_primary(producer: DurableProducer, primary: FlakyLog) -> None:
    producer.close()
    assert primary.closed


class FailingHalfway:
    """The active segment's file, failing a write part-way (disk full)."""

    def __init__(self, real: object) -> None:
        self.real = real

    def write(self, data: bytes) -> int:
        self.real.write(data[: len(data) // 2])  # type: ignore[attr-defined]
        self.real.flush()  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_a_failed_append_is_cut_off_so_later_accepted_events_stay_readable(
    tmp_path: Path, primary: FlakyLog
) -> None:
    primary.down = True
    producer = DurableProducer(primary, tmp_path / "spool")
    producer.produce(TOPIC, batch(0, 5))
    producer._active = FailingHalfway(producer._active)  # type: ignore[assignment]
    with pytest.raises(BackendUnavailableError, match="cannot be written"):
        producer.produce(TOPIC, batch(5, 5))  # refused: not accepted
    producer.produce(TOPIC, batch(10, 5))  # accepted after the failure

    primary.down = False
    assert producer.replay() == 10
    assert primary.values() == [v for _, v in batch(0, 5) + batch(10, 5)]
    assert producer.spooled() == 0


def test_a_position_left_by_a_crash_is_not_inherited_by_a_new_segment(
    tmp_path: Path, primary: FlakyLog
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    # a crash while removing replayed segment 1: its .pos (and a .done) remain
    (spool / f"{1:020d}.pos").write_text("999")
    (spool / f"{2:020d}.done").write_bytes(b"already replayed")
    primary.down = True
    producer = DurableProducer(primary, spool)
    producer.produce(TOPIC, batch(0, 10))

    primary.down = False
    assert producer.replay() == 10
    assert primary.values() == [v for _, v in batch(0, 10)]
    assert sorted(p.name for p in spool.iterdir()) == ["LOCK"]


def test_spools_no_process_holds_are_adopted_and_replayed(
    tmp_path: Path, primary: FlakyLog
) -> None:
    slots = [tmp_path / f"slot-{i}" for i in range(3)]
    primary.down = True
    gone = DurableProducer(primary, slots[1], close_primary=False)  # a worker scaled away
    gone.produce(TOPIC, batch(0, 4))
    gone.close()
    live = DurableProducer(primary, slots[2], close_primary=False)  # another live worker
    live.produce(TOPIC, batch(4, 3))
    primary.down = False

    owner = DurableProducer(primary, slots[0], orphans=lambda: slots)
    assert owner.adopt_orphans() == 4  # the free slot; the live one stays its owner's
    assert primary.values() == [v for _, v in batch(0, 4)]
    assert live.spooled() == 3 and not any(slots[1].glob("*.spool"))
    owner.close()
    live.close()


class RefusingLog(FlakyLog):
    """Refuses for good any request holding a record marked poison (as Kafka fails the
    neighbours of a too-large record in the same request)."""

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        if not self.down and any(b"poison" in value for _, value in records):
            raise ValidationError("record too large")
        super().produce(topic, records)


def test_a_record_refused_for_good_on_replay_is_set_aside_and_the_rest_goes_through(
    tmp_path: Path,
) -> None:
    primary = RefusingLog()
    primary.down = True
    producer = DurableProducer(primary, tmp_path / "spool")
    producer.produce(TOPIC, [(b"u1", b"e0"), (b"u1", b"poison"), (b"u2", b"e2")])
    producer.produce(TOPIC, [(b"u3", b"e3")])

    primary.down = False
    assert producer.replay() == 3
    assert primary.values() == [b"e0", b"e2", b"e3"]
    assert producer.spooled() == 0 and not producer.degraded
    (kept,) = (tmp_path / "spool" / "rejected.jsonl").read_text().splitlines()
    assert json.loads(kept)["value_b64"] == base64.b64encode(b"poison").decode()
    assert "too large" in json.loads(kept)["error"]


def test_replay_pauses_while_the_log_refuses_us_and_keeps_the_records(
    tmp_path: Path, primary: FlakyLog
) -> None:
    class Denied(FlakyLog):
        def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
            raise BackendError("topic authorization failed")

    producer = DurableProducer(Denied(), tmp_path / "spool", close_primary=False)
    producer._append(TOPIC, batch(0, 3))
    assert producer.replay() == 0
    assert producer.spooled() == 3 and producer.degraded


def test_events_go_straight_to_the_spool_once_the_replay_thread_found_the_primary_down(
    producer: DurableProducer, primary: FlakyLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "_PROBE_INTERVAL_S", 0.01)
    primary.down = True
    assert not producer.reachable() and not producer.degraded  # a probe changes nothing
    producer.start()
    wait_for(lambda: producer.degraded, 5.0, interval_s=0.01)
    calls = primary.calls

    producer.produce(TOPIC, batch(0, 2))  # no wait for the primary's delivery timeout

    assert primary.calls == calls and producer.spooled() == 2
    primary.down = False
    wait_for(lambda: producer.spooled() == 0 and not producer.degraded, 5.0, interval_s=0.01)
    producer.produce(TOPIC, batch(2, 1))
    assert primary.values() == [b"e0", b"e1", b"e2"]


def test_the_replay_thread_notices_an_outage_with_nothing_spooled(
    producer: DurableProducer, primary: FlakyLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "_PROBE_INTERVAL_S", 0.01)
    producer.start()
    primary.down = True
    wait_for(lambda: producer.degraded, 5.0, interval_s=0.01)
    primary.down = False
    wait_for(lambda: not producer.degraded, 5.0, interval_s=0.01)


def test_under_steady_traffic_the_spool_drains_and_events_go_directly_again(
    primary: FlakyLog, tmp_path: Path
) -> None:
    producer = DurableProducer(primary, tmp_path / "spool", retry_interval_s=0.05)
    producer.start()
    stop = threading.Event()
    produced = [0, 0, 0]

    def traffic(sender: int) -> None:
        while not stop.is_set():
            producer.produce(TOPIC, [(b"k", f"{sender}:{produced[sender]}".encode())])
            produced[sender] += 1
            time.sleep(0.001)

    primary.down = True
    senders = [threading.Thread(target=traffic, args=(n,)) for n in range(3)]
    for sender in senders:
        sender.start()
    try:
        wait_for(lambda: producer.spooled() > 50, 5.0, interval_s=0.01)
        primary.down = False

        wait_for(lambda: producer.spooled() == 0 and not producer.degraded, 5.0, interval_s=0.01)
        calls = primary.calls
        wait_for(
            lambda: primary.calls > calls + 20, 5.0, interval_s=0.01
        )  # direct sends, one per event
        assert producer.spooled() == 0
    finally:
        stop.set()
        for sender in senders:
            sender.join()
        producer.close()
    for sender in range(3):  # nothing lost, each sender's events in order
        mine = [v for v in primary.values() if v.startswith(f"{sender}:".encode())]
        assert [int(v.split(b":")[1]) for v in mine] == list(range(produced[sender]))


class GatedLog(FlakyLog):
    """A primary whose calls wait until the test releases them."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        self.entered.set()
        self.release.wait()
        super().produce(topic, records)


def spool_of(directory: Path, n: int) -> None:
    """Leave ``n`` events in the spool ``directory``, as a process during an outage."""
    down = FlakyLog()
    down.down = True
    filler = DurableProducer(down, directory)
    for start in range(0, n, 10):
        filler.produce(TOPIC, batch(start, 10))
    filler.close()


def close_during_first_call(producer: DurableProducer, primary: GatedLog) -> None:
    """Start ``producer``, and close it while its first call to ``primary`` is in flight."""
    producer.start()
    assert primary.entered.wait(10)
    closer = threading.Thread(target=producer.close)
    closer.start()
    wait_for(producer._stop.is_set, 10, "close() to ask the replay thread to stop")
    primary.release.set()
    closer.join(10)
    assert not closer.is_alive()


@pytest.mark.parametrize("adopted", [False, True])
def test_close_ends_a_long_replay_after_the_call_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adopted: bool
) -> None:
    # Regression (shutdown audit): a replay, of its own spool or of an adopted one, ran
    # to the end of the backlog before close() returned: with an outage's worth of
    # events, the API's shutdown outlasted Kubernetes' grace period and was killed.
    monkeypatch.setattr(spool, "_REPLAY_BATCH", 10)
    backlog = tmp_path / ("orphan" if adopted else "spool")
    spool_of(backlog, 100)
    primary = GatedLog()
    if adopted:
        producer = DurableProducer(primary, tmp_path / "spool", orphans=lambda: [backlog])
    else:
        producer = DurableProducer(primary, backlog)

    close_during_first_call(producer, primary)

    assert primary.calls == 1  # the batch in flight, and no more
    later = FlakyLog()
    reopened = DurableProducer(later, backlog)
    assert reopened.spooled() == 90  # the rest waits for the next start, in order
    reopened.replay()
    assert later.values() == [v for _, v in batch(10, 90)]
    reopened.close()
