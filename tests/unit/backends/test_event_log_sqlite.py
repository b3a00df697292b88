"""The embedded SQLite event log keeps the event log contract, across processes too."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlrec.backends.factory import EventLog, open_event_log
from mlrec.backends.sqlite_log import SqliteEventLog
from mlrec.core.errors import BackendUnavailableError, ConfigurationError
from mlrec.events.log import DLQ_TOPIC, INTERACTIONS_TOPIC, EventConsumer, EventProducer
from tests.contracts.event_log import EventLogContract, poll_until


class TestSqliteEventLog(EventLogContract):
    wait_s = 2.0
    quiet_s = 0.05

    @pytest.fixture
    def event_log(self, tmp_path: Path) -> EventLog:
        return open_event_log(None, tmp_path / "events.db", partitions=3)


def test_producer_and_consumer_satisfy_the_protocols(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    producer: EventProducer = log.producer()
    consumer: EventConsumer = log.consumer("g", ["t"])
    assert callable(producer.produce) and callable(consumer.rewind)


def test_records_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    producer = SqliteEventLog(path).producer()
    producer.produce("t", [(b"k", b"a"), (b"k", b"b")])
    producer.close()

    consumer = SqliteEventLog(path).consumer("g", ["t"])

    assert [r.value for r in poll_until(consumer, 2, 1.0)] == [b"a", b"b"]


@pytest.mark.slow
def test_another_process_reads_what_this_one_produced_and_commits_for_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    SqliteEventLog(path).producer().produce("t", [(b"k", str(i).encode()) for i in range(5)])
    code = textwrap.dedent(
        f"""
        from mlrec.backends.sqlite_log import SqliteEventLog
        log = SqliteEventLog({str(path)!r})
        c = log.consumer("g", ["t"])
        print(len(c.poll(3, 1.0)))
        c.commit()
        c.close()
        log.producer().produce("t", [(b"k", b"5")])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "3"

    consumer = SqliteEventLog(path).consumer("g", ["t"])

    assert [r.value for r in poll_until(consumer, 3, 1.0)] == [b"3", b"4", b"5"]


@pytest.mark.slow
def test_concurrent_processes_produce_dense_offsets_without_losing_records(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    SqliteEventLog(path, partitions=2)
    code = textwrap.dedent(
        f"""
        import sys
        from mlrec.backends.sqlite_log import SqliteEventLog
        p = SqliteEventLog({str(path)!r}, partitions=2).producer()
        for i in range(20):
            p.produce("t", [(f"k{{i % 5}}".encode(), sys.argv[1].encode())] * 5)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n)]) for n in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]

    got = poll_until(SqliteEventLog(path).consumer("g", ["t"]), 200, 2.0)

    assert len(got) == 200
    for partition in {r.partition for r in got}:
        offsets = sorted(r.offset for r in got if r.partition == partition)
        assert offsets == list(range(len(offsets)))


def test_ensure_topics_refuses_when_partition_count_changes(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    log.ensure_topics({"t": 2})
    log.ensure_topics({"t": 2})

    with pytest.raises(ConfigurationError, match="already has 2 partitions"):
        log.ensure_topics({"t": 3})


def test_purge_consumed_deletes_only_what_every_group_committed(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db", partitions=1)
    log.producer().produce("t", [(b"k", str(i).encode()) for i in range(10)])
    fast, slow = log.consumer("fast", ["t"]), log.consumer("slow", ["t"])
    assert len(poll_until(fast, 10, 1.0)) == 10
    fast.commit()
    assert len(poll_until(slow, 4, 1.0)) == 4
    slow.commit()

    assert log.purge_consumed(["fast", "slow"]) == 4
    log.producer().produce("t", [(b"k", b"10")])
    assert [r.offset for r in poll_until(fast, 1, 1.0)] == [10]
    assert [r.value for r in poll_until(slow, 7, 1.0)][-1] == b"10"


def test_open_event_log_picks_embedded_when_no_bootstrap(tmp_path: Path) -> None:
    log = open_event_log("", tmp_path / "events.db")
    log.ensure_topics()
    assert not log.is_kafka
    assert open_event_log("kafka://127.0.0.1:9092", tmp_path / "x.db").kafka_bootstrap == (
        "127.0.0.1:9092"
    )
    producer = log.producer()
    producer.produce(INTERACTIONS_TOPIC, [(b"u", b"v")])
    producer.produce(DLQ_TOPIC, [(b"u", b"v")])
    assert len(poll_until(log.consumer("g", [INTERACTIONS_TOPIC, DLQ_TOPIC]), 2, 1.0)) == 2


def test_log_raises_unavailable_when_file_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(BackendUnavailableError):
        SqliteEventLog(tmp_path / "dir.db")


def test_one_consumer_of_a_group_reads_while_the_others_wait(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    log.producer().produce("t", [(b"k", str(i).encode()) for i in range(4)])
    first, second = log.consumer("g", ["t"]), log.consumer("g", ["t"])

    assert [r.value for r in first.poll(2, 1.0)] == [b"0", b"1"]
    assert second.poll(10, 0.2) == []  # like a Kafka consumer without a partition
    first.commit()
    first.close()  # releases the group: the other consumer resumes at the commit

    assert [r.value for r in poll_until(second, 2, 2.0)] == [b"2", b"3"]


def test_a_consumer_that_stops_polling_loses_the_group_and_cannot_commit(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    log.producer().produce("t", [(b"k", str(i).encode()) for i in range(3)])
    stalled = log.consumer("g", ["t"], lease_seconds=0.2)
    assert [r.value for r in stalled.poll(2, 1.0)] == [b"0", b"1"]
    other = log.consumer("g", ["t"], lease_seconds=0.2)

    # the stalled consumer's lease lapses: the other reads from the last commit
    assert [r.value for r in poll_until(other, 3, 2.0)] == [b"0", b"1", b"2"]
    with pytest.raises(BackendUnavailableError, match="read by another consumer"):
        stalled.commit()
    other.commit()
    other.close()

    # back in the group, the stalled one resumes at the other's commit, not its own reads
    log.producer().produce("t", [(b"k", b"3")])
    assert [r.value for r in poll_until(stalled, 1, 2.0)] == [b"3"]


def test_records_past_retention_are_deleted_but_the_newest_of_each_partition_stays(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "events.db", partitions=1)
    producer = log.producer()
    producer.produce("t", [(b"k", b"old-1"), (b"k", b"old-2")])
    producer.produce("u", [(b"k", b"only")])
    time.sleep(0.05)
    producer.produce("t", [(b"k", b"new")])
    reader = log.consumer("late", ["t", "u"])

    assert log.delete_older_than(0.04) == 2  # t's two old records; u's only one stays
    assert log.delete_older_than(3600) == 0
    # a consumer behind the deleted records resumes at the oldest one left
    assert sorted(r.value for r in poll_until(reader, 2, 1.0)) == [b"new", b"only"]
    producer.produce("t", [(b"k", b"next")])
    assert [r.offset for r in poll_until(reader, 1, 1.0)] == [3]  # offsets count on


def test_a_log_file_of_an_older_version_gains_retention_from_now(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "events.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE topics (topic TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
        CREATE TABLE records (topic TEXT NOT NULL, partition INTEGER NOT NULL,
            offset INTEGER NOT NULL, key BLOB, value BLOB NOT NULL,
            PRIMARY KEY (topic, partition, offset)) WITHOUT ROWID;
        INSERT INTO topics VALUES ('t', 1);
        INSERT INTO records VALUES ('t', 0, 0, NULL, X'61'), ('t', 0, 1, NULL, X'62');
        """
    )
    conn.commit()
    conn.close()

    log = SqliteEventLog(path)
    assert log.delete_older_than(3600) == 0  # the old records count as appended now
    log.producer().produce("t", [(b"k", b"c")])
    assert [r.value for r in poll_until(log.consumer("g", ["t"]), 3, 1.0)] == [b"a", b"b", b"c"]
    assert log.delete_older_than(0, now=time.time() + 1) == 2


def test_workers_opening_a_new_log_at_once_all_succeed(tmp_path: Path) -> None:
    # uvicorn workers start together: the file's switch to WAL can meet a lock
    import threading

    failures: list[str] = []
    for attempt in range(60):
        path = tmp_path / f"events-{attempt}.db"
        start = threading.Barrier(3)

        def open_log(path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                SqliteEventLog(path)
            except BackendUnavailableError as exc:
                failures.append(str(exc))

        threads = [threading.Thread(target=open_log) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_a_follower_writes_nothing_to_the_log(tmp_path: Path) -> None:
    import sqlite3

    log = SqliteEventLog(tmp_path / "events.db")
    log.ensure_topics({"t": 1})
    follower = log.follower(["t"])
    log.producer().produce("t", [(b"k", b"a")])
    assert [r.value for r in poll_until(follower, 1, 2.0)] == [b"a"]
    follower.close()

    with sqlite3.connect(tmp_path / "events.db") as conn:
        tables = ("group_leases", "group_offsets")
        assert [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables] == [0, 0]


def test_a_follower_reads_a_topic_created_after_it_opened_from_its_start(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    follower = log.follower(["late"])
    assert follower.poll(10, 0.05) == []

    log.ensure_topics({"late": 2})
    log.producer().produce("late", [(b"k1", b"a"), (b"k2", b"b")])

    assert sorted(r.value for r in poll_until(follower, 2, 2.0)) == [b"a", b"b"]
    follower.close()


def test_the_reachability_probe_does_not_wait_behind_a_blocked_produce(tmp_path: Path) -> None:
    import sqlite3
    import threading

    log = SqliteEventLog(tmp_path / "events.db", busy_timeout_s=2.0)
    log.ensure_topics({"t": 1})
    producer = log.producer()
    writer = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    outcome: list[object] = []

    def produce() -> None:
        try:
            producer.produce("t", [(b"k", b"v")])
            outcome.append("written")
        except BackendUnavailableError as exc:
            outcome.append(exc)

    blocked = threading.Thread(target=produce)
    blocked.start()
    time.sleep(0.2)
    try:
        started = time.monotonic()
        assert producer.reachable()
        assert time.monotonic() - started < 1.0  # not the producer's 2 s wait
    finally:
        writer.execute("ROLLBACK")
        blocked.join()
        writer.close()
        producer.close()
