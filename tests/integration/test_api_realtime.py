"""The API and the stream processor against the real Redis, Kafka and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition
from fastapi.testclient import TestClient

from mlrec.backends.factory import (
    open_event_log,
    open_online_store,
)
from mlrec.data import make_demo
from mlrec.events.log import INTERACTIONS_TOPIC
from mlrec.events.processor import StreamProcessor
from mlrec.features.realtime import RealtimeFeatures
from mlrec.models import create_model
from mlrec.services.api.app import build_state, create_app
from mlrec.services.api.config import ApiSettings
from mlrec.services.stream import realtime_sink
from tests.integration.serving import put_in_production

pytestmark = pytest.mark.integration

REDIS_DB = 7  # keeps these tests' keys apart from the contract suites (db 0)


def start_group_at_end(bootstrap: str, group: str, topic: str) -> None:
    """Commit the group's offsets at the topic's end, so the processor under test skips
    what earlier runs (benchmarks) left on the shared topic and reads only new events."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                ends = []
                for partition in partitions:
                    tp = TopicPartition(topic, partition)
                    _, high = consumer.get_watermark_offsets(tp, timeout=10)
                    ends.append(TopicPartition(topic, partition, high))
                consumer.commit(offsets=ends, asynchronous=False)
                return
            except KafkaException:
                # a topic created a moment ago may not have partition leaders yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


@pytest.fixture
def live_redis(redis_url: str) -> str:
    url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def api(
    tmp_path: Path, fresh_database_url: str, live_redis: str, kafka_bootstrap: str, unique_name: str
) -> Iterator[tuple[TestClient, list[str]]]:
    data = make_demo(n_users=100, n_items=60, seed=3)
    model = create_model("ease").fit(data)
    put_in_production(model, tmp_path / "saved", fresh_database_url)
    settings = ApiSettings(
        data_dir=tmp_path,
        database_url=fresh_database_url,
        redis_url=live_redis,
        kafka_bootstrap_servers=kafka_bootstrap,
    )
    state = build_state(settings)
    start_group_at_end(kafka_bootstrap, unique_name, INTERACTIONS_TOPIC)
    # the stream processor as `mlrec serve stream` runs it, in its own consumer group
    event_log = open_event_log(kafka_bootstrap, tmp_path / "unused.db")
    online = open_online_store(live_redis)
    processor = StreamProcessor(
        event_log.consumer(unique_name, [INTERACTIONS_TOPIC]),
        realtime_sink(RealtimeFeatures(online)),
        event_log.producer("test-dlq"),
        poll_timeout=0.02,
    )
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    with TestClient(create_app(state=state)) as client:
        yield client, data.items.ids()
    processor.stop()
    thread.join(10)
    processor.consumer.close()
    online.close()
    state.close()


def test_an_event_through_kafka_personalises_the_next_answer(
    api: tuple[TestClient, list[str]], unique_name: str
) -> None:
    client, items = api
    user = f"user-{unique_name}"
    assert client.get(f"/v1/recommendations/{user}").json()["source"] == "popular"
    posted = client.post(
        "/v1/events", json={"user_id": user, "item_id": items[0], "type": "purchase"}
    )
    assert posted.status_code == 202 and posted.json()["spooled"] is False
    deadline = time.monotonic() + 10
    body = client.get(f"/v1/recommendations/{user}").json()
    while body["source"] != "personal" and time.monotonic() < deadline:
        time.sleep(0.05)
        body = client.get(f"/v1/recommendations/{user}").json()
    assert body["source"] == "personal" and not body["degraded"]
    assert items[0] not in {i["item_id"] for i in body["items"]}


def test_ready_reports_real_dependencies(api: tuple[TestClient, list[str]]) -> None:
    client, _ = api
    ready = client.get("/ready").json()
    assert ready == {
        "status": "ok",
        "checks": {"model": "ok", "feature_store": "ok", "event_log": "ok"},
        "model": {"name": "default", "version": 1, "algorithm": "ease"},
    }


def test_features_round_trip_through_redis(api: tuple[TestClient, list[str]]) -> None:
    client, _ = api
    body = client.post("/v1/features/user_stats/batch", json={"entity_ids": ["u1", "u2"]}).json()
    assert [e["entity_id"] for e in body["entities"]] == ["u1", "u2"]
    assert all("interaction_count" in e["missing"] for e in body["entities"])
