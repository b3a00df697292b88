"""Embedded log consumer groups: a reader that loses the lease and takes it back later
must not move the group's committed offsets backwards with a stale batch."""

from __future__ import annotations

import time
from pathlib import Path

from mlrec.backends.sqlite_log import SqliteEventLog


def _committed(log: SqliteEventLog, group: str) -> dict[tuple[str, int], int]:
    db = log._db()
    try:
        rows = db.conn.execute(
            "SELECT topic, partition, offset FROM group_offsets WHERE group_id = ?", (group,)
        ).fetchall()
    finally:
        db.close()
    return {(t, int(p)): int(o) for t, p, o in rows}


def test_a_stale_batch_committed_after_retaking_the_lease_does_not_move_offsets_back(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "events.db", partitions=1)
    producer = log.producer()
    producer.produce("t", [(b"k", b"%d" % i) for i in range(10)])
    a = log.consumer("g", ["t"], lease_seconds=0.2)
    b = log.consumer("g", ["t"], lease_seconds=0.2)
    stale = a.poll(3, 1.0)  # A reads 0..2, then stalls (a slow apply) past its lease
    assert [r.offset for r in stale] == [0, 1, 2]
    time.sleep(0.3)
    taken = b.poll(100, 2.0)  # B takes the group over and reads, applies, commits 0..9
    assert [r.offset for r in taken] == list(range(10))
    b.commit()
    b.close()  # B leaves (a worker restart): the lease is free again
    assert a.poll(100, 0.5) == []  # A retakes the lease, resumes at B's commit: nothing new
    a.commit(through=stale)  # the pipelined processor now commits the batch it applied
    assert _committed(log, "g") == {("t", 0): 10}  # not back to 3: 3..9 are not redelivered
    a.close()
    producer.close()
