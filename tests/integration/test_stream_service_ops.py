"""``mlrec serve stream`` in a process of its own, as an operator stops it, and topic
creation on the real broker."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mlrec.backends.kafka import ensure_topics
from tests.integration.serving import closed_port
from tests.polling import wait_for

pytestmark = pytest.mark.integration

# ``mlrec serve stream`` on the embedded log, whose consumer's commit blocks the way a
# Kafka commit does while the broker is down (it waits for the coordinator for as
# long as there is none); the marker file says the commit is blocked.
_HANGING_COMMIT = """
import sys, threading
from pathlib import Path
from mlrec.backends import factory
from mlrec.cli import main

marker = Path(sys.argv[1])
real_open = factory.open_event_log

class HangingCommit:
    def __init__(self, inner):
        self.inner = inner
    def poll(self, max_records, timeout_seconds):
        return self.inner.poll(max_records, timeout_seconds)
    def commit(self, through=None):
        marker.write_text("blocked")
        threading.Event().wait()
    def rewind(self):
        self.inner.rewind()
    def lag(self):
        return self.inner.lag()
    def close(self):
        self.inner.close()

def open_event_log(bootstrap, path, partitions=6):
    log = real_open(bootstrap, path, partitions)
    consumer = log.consumer
    log.consumer = lambda group, topics: HangingCommit(consumer(group, topics))
    return log

factory.open_event_log = open_event_log
main(["serve", "stream", *sys.argv[2:]])
"""

_PRODUCE = """
import sys
from pathlib import Path
from mlrec.backends.factory import open_event_log
from mlrec.events import INTERACTIONS_TOPIC, encode_event, event_key
from mlrec.events.schemas import InteractionEvent
log = open_event_log(None, Path(sys.argv[1]))
log.ensure_topics()
events = [InteractionEvent(user_id="u", item_id=f"i{i}", event_id=f"e{i}") for i in range(10)]
log.producer().produce(INTERACTIONS_TOPIC, [(event_key(e), encode_event(e)) for e in events])
"""


def test_sigterm_while_a_commit_hangs_exits_after_the_shutdown_timeout_saying_so(
    tmp_path: Path,
) -> None:
    # Regression (ops audit): with the broker down, SIGTERM never ended the process: the
    # handler ran only once the commit returned, i.e. once Kafka was back (a killed
    # broker kept it waiting until SIGKILL).
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MLREC_KAFKA_BOOTSTRAP_SERVERS", "MLREC_REDIS_URL")
    }
    env["MLREC_DATA_DIR"] = str(tmp_path / "data")
    subprocess.run(
        [sys.executable, "-c", _PRODUCE, str(tmp_path / "data" / "events.db")], env=env, check=True
    )
    marker = tmp_path / "commit-blocked"
    port = closed_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _HANGING_COMMIT,
            str(marker),
            "--metrics-port",
            str(port),
            "--shutdown-timeout",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None, 60, "the commit")
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 1, (out, err)
    assert "did not stop within 1 s (--shutdown-timeout" in err
    assert "Traceback" not in err


def test_a_topic_with_fewer_partitions_is_grown_with_a_warning(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (ops audit): the processor grew an existing mlrec.interactions to the
    # configured count without a word, although that moves users' new events to other
    # partitions than their earlier ones.
    topic = f"t.ops.grow.{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, {topic: 1})
    with caplog.at_level(logging.WARNING, logger="mlrec.backends.kafka"):
        ensure_topics(kafka_bootstrap, {topic: 3})
        ensure_topics(kafka_bootstrap, {topic: 3})  # nothing to grow: nothing said

    warnings = [r.getMessage() for r in caplog.records if topic in r.getMessage()]
    assert warnings == [
        f"Kafka topic {topic} had 1 partitions: grown to 3 (new records of a key may go "
        "to another partition than its earlier ones)"
    ]
