"""Embedded log retention runs under the log's write lock (every API worker at start and
every 10 minutes): when nothing is due it must not scan the whole log, or every
producer waits behind it for as long as the log is big."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from mlrec.backends import sqlite_log
from mlrec.backends.sqlite_log import SqliteEventLog


def _count_vm_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    steps = [0]
    original = sqlite_log._Db.__init__

    def counting_init(self: sqlite_log._Db, path: Path, busy_timeout_s: float) -> None:
        original(self, path, busy_timeout_s)

        def tick() -> int:
            steps[0] += 1
            return 0

        self.conn.set_progress_handler(tick, 100)

    monkeypatch.setattr(sqlite_log._Db, "__init__", counting_init)
    return steps


def test_retention_with_nothing_due_does_not_scan_every_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.db"
    log = SqliteEventLog(path, partitions=3)
    with sqlite3.connect(path) as conn:  # 60,000 fresh records, written fast
        conn.execute("INSERT INTO topics VALUES ('t', 3)")
        conn.executemany(
            "INSERT INTO records (topic, partition, offset, key, value, appended_at)"
            " VALUES ('t', ?, ?, NULL, x'00', ?)",
            ((i % 3, i // 3, time.time()) for i in range(60_000)),
        )
    steps = _count_vm_steps(monkeypatch)
    assert log.delete_older_than(3600) == 0
    # a scan of the records costs ~10 VM steps each (~6,000 ticks of 100 here)
    assert steps[0] < 200


def test_retention_still_deletes_what_is_due_and_keeps_the_newest(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db", partitions=2)
    producer = log.producer()
    producer.produce("t", [(None, b"%d" % i) for i in range(6)])  # round robin: 3 each
    producer.close()
    now = time.time()
    assert log.delete_older_than(60, now=now + 120) == 4  # all but the newest of each
    assert log.delete_older_than(60, now=now + 120) == 0
