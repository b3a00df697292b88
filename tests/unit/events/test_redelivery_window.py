"""A redelivery never exceeds the dedup window: the largest one the shipped services
can cause is recognised, and a processor configured beyond its window refuses to start."""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.backends.sqlite_log import SqliteEventLog
from mlrec.core.errors import ConfigurationError
from mlrec.events import INTERACTIONS_TOPIC, InteractionEvent, LogRecord, encode_event, event_key
from mlrec.events.processor import StreamProcessor, WindowedSink, max_redelivery
from mlrec.features.realtime import RealtimeConfig, RealtimeFeatures
from mlrec.services.stream import realtime_sink
from tests.unit.events.consumers import DelegatingConsumer

GROUP = "mlrec.stream"


def shipped_max_batches() -> dict[str, int]:
    """The ``max_batch`` of each processor the services run."""
    from mlrec.cli.serve import serve_stream

    cli = inspect.signature(serve_stream).parameters["max_batch"].default
    # the API's embedded processor passes no max_batch (see services/api/app.py)
    embedded = inspect.signature(StreamProcessor).parameters["max_batch"].default
    return {"mlrec serve stream": cli, "embedded": embedded}


def test_the_default_window_covers_the_redelivery_of_every_shipped_processor() -> None:
    window = RealtimeConfig().dedup_window
    for name, max_batch in shipped_max_batches().items():
        assert max_redelivery(max_batch) <= window, name


def test_a_processor_refuses_a_max_batch_whose_redelivery_exceeds_the_window(
    tmp_path: Path,
) -> None:
    store = InMemoryOnlineStore()
    small = realtime_sink(RealtimeFeatures(store, RealtimeConfig(dedup_window=300)))
    assert isinstance(small, WindowedSink) and small.dedup_window == 300
    log = SqliteEventLog(tmp_path / "events.db")
    consumer = log.consumer(GROUP, [INTERACTIONS_TOPIC])

    StreamProcessor(consumer, small, log.producer(), max_batch=150, pipeline=True)
    for pipeline in (False, True):
        with pytest.raises(ConfigurationError, match=r"max_batch 151 .* window of 300"):
            StreamProcessor(consumer, small, log.producer(), max_batch=151, pipeline=pipeline)
    with pytest.raises(ConfigurationError, match="at least 1"):
        StreamProcessor(consumer, small, log.producer(), max_batch=0)

    default = realtime_sink(RealtimeFeatures(store))
    cli_batch = shipped_max_batches()["mlrec serve stream"]
    StreamProcessor(consumer, default, log.producer(), max_batch=cli_batch, pipeline=True)
    with pytest.raises(ConfigurationError):
        StreamProcessor(consumer, default, log.producer(), max_batch=cli_batch + 1)

    # a sink that says nothing about a window is not checked
    def plain(events: Sequence[InteractionEvent]) -> int:
        return len(events)

    StreamProcessor(consumer, plain, log.producer(), max_batch=100_000)


class NeverCommits(DelegatingConsumer):
    """A consumer that dies before each commit: everything it applied is redelivered."""

    def commit(self, through: Sequence[LogRecord] | None = None) -> None:
        pass


def test_the_largest_redelivery_of_one_users_events_is_applied_once(tmp_path: Path) -> None:
    # ``mlrec serve stream``'s processor applies two full batches of one (heavy) user,
    # and its commits are lost: a restarted processor gets all of them again
    max_batch = shipped_max_batches()["mlrec serve stream"]
    log = SqliteEventLog(tmp_path / "events.db", partitions=1)
    now = time.time()
    events = [
        InteractionEvent(event_id=f"e{i}", user_id="bot-1", item_id=f"i{i % 50}", timestamp=now)
        for i in range(max_redelivery(max_batch))
    ]
    log.producer().produce(INTERACTIONS_TOPIC, [(event_key(e), encode_event(e)) for e in events])
    features = RealtimeFeatures(InMemoryOnlineStore())
    first = StreamProcessor(
        NeverCommits(log.consumer(GROUP, [INTERACTIONS_TOPIC])),
        realtime_sink(features),
        log.producer(),
        max_batch,
        pipeline=True,
    )
    while first.run_once():
        pass
    first.consumer.close()
    assert first.stats.applied == len(events)

    again = StreamProcessor(
        log.consumer(GROUP, [INTERACTIONS_TOPIC]),
        realtime_sink(features),
        log.producer(),
        max_batch,
        pipeline=True,
    )
    while again.run_once():
        pass

    assert again.stats.records == len(events)
    assert again.stats.applied == 0
    assert again.stats.duplicates == len(events)
    assert features.activity("bot-1")["1h"] == len(events)
