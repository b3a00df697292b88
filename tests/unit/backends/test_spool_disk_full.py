"""DurableProducer on a full disk: a refused batch leaves nothing to replay, and a
replay that cannot record its progress pauses instead of re-sending in a loop."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import pytest

from mlrec.backends.spool import DurableProducer, read_segment
from mlrec.core.errors import BackendUnavailableError

TOPIC = "mlrec.interactions"

# A process whose files cannot grow past LIMIT bytes (RLIMIT_FSIZE: a write past it
# fails with EFBIG, after writing what fits, as on a full disk) spools batches of
# several records with the event log down, until one is refused. It prints the
# values of the batches it accepted.
_CHILD = """
import resource, signal, sys
from pathlib import Path
from mlrec.backends.spool import DurableProducer
from mlrec.core.errors import BackendUnavailableError

class Down:
    def produce(self, topic, records):
        raise BackendUnavailableError("the event log is down")
    def reachable(self):
        return False
    def close(self):
        pass

producer = DurableProducer(Down(), Path(sys.argv[1]))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
accepted = []
for start in range(0, 1000, 7):
    records = [(b"u1", b"e%04d" % i + b"x" * 1000) for i in range(start, start + 7)]
    try:
        producer.produce("mlrec.interactions", records)
    except BackendUnavailableError:
        break
    accepted += [value[:5].decode() for _, value in records]
print(" ".join(accepted))
"""


def test_a_batch_refused_for_a_full_disk_leaves_none_of_its_records_in_the_spool(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), str(spool)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    accepted = child.stdout.split()
    assert 0 < len(accepted) < 1000, child.stderr  # some accepted, then one refused

    on_disk = [
        record.value[:5].decode()
        for segment in sorted(spool.glob("*.spool"))
        for record in read_segment(segment)
    ]
    assert on_disk == accepted  # the refused batch was answered with an error: not replayed


class Up:
    """A primary that takes everything and remembers each call's records."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.lock = threading.Lock()

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        with self.lock:
            self.calls.append([value for _, value in records])

    def reachable(self) -> bool:
        return True

    def close(self) -> None:
        pass


class CountedEvent(threading.Event):
    """The replay thread's stop event, counting the pauses taken on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


class Down:
    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        raise BackendUnavailableError("the event log is down")

    def reachable(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_a_replay_that_cannot_save_its_position_pauses_before_sending_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    first = DurableProducer(Down(), spool)
    first.produce(TOPIC, [(b"u1", b"e1"), (b"u1", b"e2")])
    first.close()

    def disk_full(segment: Path, acked: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DurableProducer, "_save_position", staticmethod(disk_full))
    primary = Up()
    producer = DurableProducer(primary, spool, retry_interval_s=0.01)  # a restart, log up
    stop = producer._stop = CountedEvent()
    pauses_at_each_send: list[int] = []
    real_produce = primary.produce

    def produce(topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        pauses_at_each_send.append(stop.waits)
        real_produce(topic, records)

    primary.produce = produce  # type: ignore[method-assign]
    producer.start()
    deadline = time.monotonic() + 10
    while len(pauses_at_each_send) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    producer.close()

    assert len(pauses_at_each_send) >= 3
    # the same records are sent again (their position could not be saved), but each
    # attempt only after a pause: never in a tight loop flooding the event log
    assert all(later > earlier for earlier, later in pairwise(pauses_at_each_send))
    assert producer.spooled() == 2  # still spooled: nothing is lost
