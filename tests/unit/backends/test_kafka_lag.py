"""How the Kafka consumer knows its lag without a round trip, offline: librdkafka's
statistics reports (``stats_cb``) and rebalance callbacks are fed by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from mlrec.backends.kafka import KafkaConsumer

NOWHERE = "127.0.0.1:1"  # nothing listens: the real client is never used
UNKNOWN = -1001  # librdkafka's "invalid offset" in its statistics


def report(partitions: dict[int, dict[str, int]], topic: str = "t") -> str:
    """A librdkafka statistics report (the fields cached_lag reads, as STATISTICS.md
    names them), with librdkafka's internal partition -1 among the partitions."""
    parts: dict[str, Any] = {
        "-1": {"lo_offset": UNKNOWN, "hi_offset": UNKNOWN, "committed_offset": UNKNOWN}
    }
    for partition, offsets in partitions.items():
        parts[str(partition)] = {
            "lo_offset": offsets.get("lo", 0),
            "hi_offset": offsets.get("hi", UNKNOWN),
            "committed_offset": offsets.get("committed", UNKNOWN),
            "app_offset": offsets.get("app", UNKNOWN),
            "consumer_lag": -1,
        }
    return json.dumps({"name": "rdkafka#consumer-1", "topics": {topic: {"partitions": parts}}})


def make(auto_offset_reset: str = "earliest") -> KafkaConsumer:
    kafka = KafkaConsumer(NOWHERE, "g", ["t"], auto_offset_reset=auto_offset_reset)
    kafka._consumer.close()
    return kafka


@pytest.fixture
def consumer() -> Iterator[KafkaConsumer]:
    kafka = make()
    kafka._on_assign(None, [TopicPartition("t", 0), TopicPartition("t", 1)])
    yield kafka


def test_cached_lag_is_the_high_watermark_minus_the_position(consumer: KafkaConsumer) -> None:
    consumer._on_stats(report({0: {"hi": 100, "app": 40}, 1: {"hi": 50, "app": 50}}))
    assert consumer.cached_lag() == 60


def test_cached_lag_counts_from_the_commit_where_nothing_was_polled_since_assignment(
    consumer: KafkaConsumer,
) -> None:
    # a restarted, caught-up processor: librdkafka knows no position, only the commit
    consumer._on_stats(report({0: {"hi": 100, "committed": 100}, 1: {"hi": 50, "committed": 45}}))
    assert consumer.cached_lag() == 5


@pytest.mark.parametrize(("reset", "expected"), [("earliest", 30), ("latest", 0)])
def test_cached_lag_of_a_group_without_commits_follows_auto_offset_reset(
    reset: str, expected: int
) -> None:
    consumer = make(reset)
    consumer._on_assign(None, [TopicPartition("t", 0)])
    consumer._on_stats(report({0: {"lo": 10, "hi": 40}}))
    assert consumer.cached_lag() == expected


def test_cached_lag_does_not_count_records_deleted_by_retention(consumer: KafkaConsumer) -> None:
    consumer._on_stats(report({0: {"lo": 90, "hi": 100, "app": 20}, 1: {"hi": 0, "app": 0}}))
    assert consumer.cached_lag() == 10


def test_cached_lag_is_unknown_until_every_assigned_partition_was_reported(
    consumer: KafkaConsumer,
) -> None:
    assert consumer.cached_lag() is None  # no report yet
    consumer._on_stats(report({0: {"hi": 100, "app": 40}}))
    assert consumer.cached_lag() is None  # partition 1 is missing
    consumer._on_stats(report({0: {"hi": 100, "app": 40}, 1: {"app": 3}}))
    assert consumer.cached_lag() is None  # partition 1's end is not known yet


def test_cached_lag_counts_only_the_partitions_assigned_to_this_member(
    consumer: KafkaConsumer,
) -> None:
    stats = report({0: {"hi": 100, "app": 40}, 1: {"hi": 50, "app": 0}, 2: {"hi": 9}})
    consumer._on_stats(stats)
    assert consumer.cached_lag() == 110  # partition 2 belongs to another member

    consumer._on_revoke(None, [TopicPartition("t", 1)])
    assert consumer.cached_lag() == 60

    consumer._on_revoke(None, [TopicPartition("t", 0)])
    assert consumer.cached_lag() == 0  # nothing assigned: nothing to read


def test_cached_lag_ignores_other_topics_and_an_unreadable_report(
    consumer: KafkaConsumer,
) -> None:
    consumer._on_stats(report({0: {"hi": 100, "app": 40}, 1: {"hi": 50, "app": 50}}))
    consumer._on_stats(report({0: {"hi": 7}, 1: {"hi": 7}}, topic="other"))
    assert consumer.cached_lag() is None  # a report without our topic: nothing known

    consumer._on_stats(report({0: {"hi": 100, "app": 40}, 1: {"hi": 50, "app": 50}}))
    consumer._on_stats("{not json")
    consumer._on_stats(json.dumps({"topics": {"t": {"partitions": {"0": None}}}}))
    assert consumer.cached_lag() == 60  # the last readable report stands


def test_the_consumer_asks_librdkafka_for_statistics_every_stats_interval() -> None:
    seen: dict[str, Any] = {}

    class Recording:
        def __init__(self, config: dict[str, Any]) -> None:
            seen.update(config)

        def subscribe(self, *_args: Any, **_kwargs: Any) -> None:
            pass

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mlrec.backends.kafka.Consumer", Recording)
        consumer = KafkaConsumer(NOWHERE, "g", ["t"], stats_interval_s=0.5)
    assert seen["statistics.interval.ms"] == 500
    assert seen["stats_cb"] == consumer._on_stats


def test_cached_lag_is_unknown_before_the_first_assignment_and_zero_with_no_partitions() -> None:
    # Regression (metrics audit): the lag gauge read 0 until the group assigned the
    # partitions, while the group really lagged by thousands of records
    kafka = make()
    assert kafka.cached_lag() is None

    kafka._on_assign(None, [])  # more members than partitions: none for this one
    assert kafka.cached_lag() == 0
