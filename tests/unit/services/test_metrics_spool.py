"""``mlrec_events_spool_pending``: the events a process holds in its spools, whatever
else its replay thread opens (an orphaned spool it adopts is a producer of its own)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prometheus_client import REGISTRY

from mlrec.backends.spool import DurableProducer
from mlrec.core.errors import BackendUnavailableError

TOPIC = "mlrec.interactions"


class DownLog:
    """An event log that is down."""

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        raise BackendUnavailableError("log is down")

    def reachable(self) -> bool:
        return False

    def close(self) -> None:
        pass


def pending() -> float:
    value = REGISTRY.get_sample_value("mlrec_events_spool_pending")
    assert value is not None
    return value


def events(n: int, tag: str) -> list[tuple[bytes | None, bytes]]:
    return [(b"u1", f"{tag}{i}".encode()) for i in range(n)]


def test_spool_pending_still_counts_the_own_spool_after_adopting_an_empty_orphan(
    tmp_path: Path,
) -> None:
    slots = [tmp_path / "slot-00", tmp_path / "slot-01"]
    DurableProducer(DownLog(), slots[1]).close()  # a free slot, nothing in it
    before = pending()
    owner = DurableProducer(DownLog(), slots[0], orphans=lambda: slots)
    try:
        owner.produce(TOPIC, events(5, "own"))
        assert pending() == before + 5

        owner.adopt_orphans()

        assert owner.spooled() == 5
        assert pending() == before + 5
    finally:
        owner.close()


def test_spool_pending_adds_an_adopted_orphans_events_to_the_own_ones(tmp_path: Path) -> None:
    slots = [tmp_path / "slot-00", tmp_path / "slot-01"]
    gone = DurableProducer(DownLog(), slots[1])  # a worker that spooled, then went away
    gone.produce(TOPIC, events(3, "gone"))
    gone.close()
    before = pending()
    owner = DurableProducer(DownLog(), slots[0], orphans=lambda: slots)
    try:
        owner.produce(TOPIC, events(5, "own"))

        owner.adopt_orphans()  # the log is still down: the orphan keeps its 3 events

        assert pending() == before + 5
    finally:
        owner.close()
    assert pending() == before  # a closed spool is counted by its next holder
