"""The API keeps the embedded event log within its retention."""

from __future__ import annotations

import time
from pathlib import Path

from mlrec.backends.factory import open_event_log
from mlrec.services.api.retention import LogRetention


def test_retention_deletes_old_embedded_records(tmp_path: Path) -> None:
    event_log = open_event_log(None, tmp_path / "events.db")
    producer = event_log.producer()
    producer.produce("t", [(b"k", b"old")] * 3)
    time.sleep(0.05)
    producer.produce("t", [(b"k", b"new")])

    # (each key hashes to one partition: the newest record of it stays)
    assert LogRetention(event_log, retention_s=0.04).run_once() == 3


def test_retention_leaves_kafka_topics_to_the_brokers(tmp_path: Path) -> None:
    kafka = open_event_log("127.0.0.1:1", tmp_path / "unused.db")
    assert kafka.apply_retention(0.0) == 0
    assert not (tmp_path / "unused.db").exists()
