"""Poison records: whatever bytes a record holds, it goes to the dead-letter topic with
the error, and the records behind it are still applied (the partition never blocks)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.backends.sqlite_log import SqliteEventLog
from mlrec.events import (
    DLQ_TOPIC,
    INTERACTIONS_TOPIC,
    InteractionEvent,
    encode_event,
)
from mlrec.events.processor import StreamProcessor
from mlrec.events.serde import EventDecodeError, decode_events
from mlrec.features.realtime import RealtimeFeatures
from mlrec.services.stream import realtime_sink
from tests.contracts.event_log import poll_until


def event(user: str, item: str, event_id: str) -> InteractionEvent:
    return InteractionEvent(user_id=user, item_id=item, event_id=event_id, timestamp=time.time())


GOOD = encode_event(event("u1", "a", "e1"))
OTHER = encode_event(event("u2", "b", "e2"))
INFINITE_TIME = (
    b'{"event_id":"e9","user_id":"u1","item_id":"a","type":"click","timestamp":Infinity}'
)


class Harness:
    def __init__(self, path: Path, pipeline: bool) -> None:
        self.log = SqliteEventLog(path, partitions=1)
        self.log.ensure_topics({INTERACTIONS_TOPIC: 1, DLQ_TOPIC: 1})
        self.producer = self.log.producer()
        self.features = RealtimeFeatures(InMemoryOnlineStore())
        self.processor = StreamProcessor(
            self.log.consumer("mlrec.stream", [INTERACTIONS_TOPIC]),
            realtime_sink(self.features),
            self.producer,
            max_batch=100,
            poll_timeout=0.01,
            pipeline=pipeline,
        )

    def send_raw(self, *values: bytes) -> None:
        self.producer.produce(INTERACTIONS_TOPIC, [(b"u1", value) for value in values])

    def step(self) -> None:
        """One batch polled, applied and committed (raises what the batch raised)."""
        self.processor.run_once()
        self.processor.finish()

    def dead_letters(self, n: int) -> list[dict[str, object]]:
        records = poll_until(self.log.consumer("dlq-reader", [DLQ_TOPIC]), n, 1.0)
        return [json.loads(record.value) for record in records]


@pytest.fixture(params=[False, True], ids=["sequential", "pipelined"])
def h(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    harness = Harness(tmp_path / "events.db", pipeline=request.param)
    yield harness
    harness.producer.close()


@pytest.mark.parametrize(
    "poison",
    [b"", b"   ", GOOD + b"," + OTHER, INFINITE_TIME],
    ids=["empty", "blank", "two-events-in-one-record", "infinite-timestamp"],
)
def test_a_poison_record_polled_alone_is_dead_lettered_and_the_events_behind_it_applied(
    h: Harness, poison: bytes
) -> None:
    h.send_raw(poison)
    h.step()  # alone in its batch: the batch is exactly the poison record
    h.send_raw(encode_event(event("u1", "b", "e3")))
    h.step()

    (letter,) = h.dead_letters(1)
    assert "invalid event" in str(letter["error"])
    assert base64.b64decode(str(letter["payload_b64"])) == poison
    assert h.processor.stats.dead_letters == 1
    assert h.processor.stats.applied == 1
    assert [item for item, _ in h.features.recent_items("u1")] == ["b"]


def test_decode_events_answers_one_result_per_record_whatever_the_bytes() -> None:
    payloads = [GOOD + b"," + OTHER, b"", OTHER]

    for batch in ([payloads[0]], [payloads[1]], payloads):
        results = decode_events(batch)
        assert len(results) == len(batch)
    results = decode_events(payloads)
    assert isinstance(results[0], EventDecodeError)
    assert isinstance(results[1], EventDecodeError)
    assert isinstance(results[2], InteractionEvent) and results[2].event_id == "e2"


def test_an_event_with_a_non_finite_timestamp_is_refused_when_decoded() -> None:
    (result,) = decode_events([INFINITE_TIME])

    assert isinstance(result, EventDecodeError)
    assert "timestamp" in str(result)
    assert decode_events([GOOD, INFINITE_TIME])[0] == decode_events([GOOD])[0]


def test_two_invalid_records_that_would_parse_as_one_array_are_each_dead_lettered(
    h: Harness,
) -> None:
    # Each is invalid alone; joined by a comma, they read as two events: the first
    # record's context string closed by the second, then a second event.
    opens = b'{"event_id":"e7","user_id":"u1","item_id":"a","context":{"s":"'
    closes = b'"}},' + encode_event(event("u1", "b", "e8"))
    h.send_raw(opens, closes)
    h.step()

    letters = h.dead_letters(2)
    assert [base64.b64decode(str(letter["payload_b64"])) for letter in letters] == [opens, closes]
    assert h.processor.stats.dead_letters == 2
    assert h.processor.stats.applied == 0
    assert h.features.recent_items("u1") == []


def test_a_record_whose_key_fills_the_logs_record_limit_is_dead_lettered_within_it(
    h: Harness,
) -> None:
    # A record Kafka took (key and value under its 1 MB): its dead letter must fit too,
    # else the log refuses it every time and the processor never gets past it.
    key = b"k" * 700_000
    h.producer.produce(INTERACTIONS_TOPIC, [(key, b"x" * 250_000)])
    h.step()
    h.send_raw(encode_event(event("u1", "b", "e3")))
    h.step()

    (dead,) = poll_until(h.log.consumer("dlq-reader", [DLQ_TOPIC]), 1, 1.0)
    assert dead.key and key.startswith(dead.key)
    assert len(dead.key) + len(dead.value) < 1_000_000
    assert [item for item, _ in h.features.recent_items("u1")] == ["b"]


def test_a_record_without_an_event_id_is_dead_lettered_not_given_a_new_id_per_read(
    h: Harness,
) -> None:
    # With an id made up at each read, a redelivery (a lost commit, a restart) would
    # apply the record again: nothing could recognise it.
    anonymous = b'{"user_id":"u1","item_id":"a","type":"click","timestamp":%.3f}' % time.time()
    h.send_raw(anonymous)
    h.step()

    (letter,) = h.dead_letters(1)
    assert "event_id" in str(letter["error"])
    assert h.processor.stats.applied == 0


def test_an_event_stamped_years_ahead_is_dead_lettered_and_popularity_still_reads(
    h: Harness,
) -> None:
    ahead = time.time() + 3 * 365 * 86400
    h.send_raw(
        b'{"event_id":"e5","user_id":"u1","item_id":"z","timestamp":%.3f}' % ahead,
        encode_event(event("u1", "b", "e6")),
    )
    h.step()

    (letter,) = h.dead_letters(1)
    assert "timestamp" in str(letter["error"])
    assert [item for item, _ in h.features.popular_items(5)] == ["b"]
    assert [item for item, _ in h.features.recent_items("u1")] == ["b"]
