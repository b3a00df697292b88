"""A produce on the embedded log waits at most the busy timeout for the write lock, also
when other threads of the same process are queued on the log's connection before it
(an API worker's request threads): then the spool takes the events, in time."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path

from mlrec.backends.sqlite_log import SqliteEventLog
from mlrec.core.errors import BackendUnavailableError


def test_queued_produces_give_up_within_the_busy_timeout_not_one_timeout_each(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    log = SqliteEventLog(path, busy_timeout_s=1.0)
    producer = log.producer()
    producer.produce("t", [(b"k", b"v")])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock for long
    waited: list[float] = []

    def produce() -> None:
        started = time.monotonic()
        with contextlib.suppress(BackendUnavailableError):
            producer.produce("t", [(b"k", b"v")])
        waited.append(time.monotonic() - started)

    threads = [threading.Thread(target=produce) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(waited) == 6
    # one deadline for all: ~1 s each; a timeout per queued thread made the last wait
    # ~6 s. The margin is wide so a loaded machine cannot fail it.
    assert max(waited) < 3.0, waited
    producer.produce("t", [(b"k", b"v")])  # and the log works again once released
    producer.close()
