"""The API with Kafka unreachable: it starts, says so, spools what it accepts, and a
later process with a reachable broker delivers the spool into the real topic."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient

from mlrec.backends.kafka import KafkaProducer, ensure_topics
from mlrec.backends.spool import DurableProducer
from mlrec.data import make_demo
from mlrec.events.log import INTERACTIONS_TOPIC
from mlrec.models import create_model
from mlrec.services.api.app import build_state, create_app
from mlrec.services.api.config import ApiSettings
from tests.integration.serving import closed_port, put_in_production

pytestmark = pytest.mark.integration


def topic_ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def read_event_ids(bootstrap: str, topic: str, start: dict[int, int], want: int) -> set[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    consumer.assign([TopicPartition(topic, p, offset) for p, offset in start.items()])
    ids: set[str] = set()
    deadline = time.monotonic() + 30
    try:
        while len(ids) < want and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                if message.error() is None:
                    ids.add(orjson.loads(message.value() or b"{}")["event_id"])
        return ids
    finally:
        consumer.close()


def test_events_accepted_while_kafka_is_down_reach_the_topic_from_the_spool(
    tmp_path: Path, fresh_database_url: str, redis_url: str, kafka_bootstrap: str
) -> None:
    model = create_model("most_popular").fit(make_demo(n_users=30, n_items=20, seed=5))
    put_in_production(model, tmp_path / "saved", fresh_database_url)
    settings = ApiSettings(
        data_dir=tmp_path,
        database_url=fresh_database_url,
        redis_url=redis_url,
        kafka_bootstrap_servers=f"127.0.0.1:{closed_port()}",
    )
    ensure_topics(kafka_bootstrap, {INTERACTIONS_TOPIC: 6})
    start = topic_ends(kafka_bootstrap, INTERACTIONS_TOPIC)
    ids = [f"outage-{uuid.uuid4().hex}" for _ in range(3)]

    state = build_state(settings)  # returns although the topics could not be created
    try:
        assert state.topics is not None and not state.topics.done
        with TestClient(create_app(state=state)) as client:
            ready = client.get("/ready").json()
            assert ready["status"] == "degraded"
            assert "topics not created yet" in ready["checks"]["event_log"]
            now = time.time()
            events = [
                {"user_id": "u1", "item_id": "i1", "type": "click", "timestamp": now, "event_id": i}
                for i in ids
            ]
            response = client.post("/v1/events", json={"events": events})
            assert response.status_code == 202
            assert response.json()["spooled"] is True
    finally:
        state.close()

    # the next process on this spool directory (e.g. the pod restarted with a reachable
    # broker) replays it into the real topic
    spools = sorted(p for p in settings.spool_dir.iterdir() if any(p.glob("*.spool")))
    assert spools, "nothing was spooled"
    for spool in spools:
        replayer = DurableProducer(KafkaProducer(kafka_bootstrap, client_id="test"), spool)
        try:
            replayer.replay()
        finally:
            replayer.close()

    assert read_event_ids(kafka_bootstrap, INTERACTIONS_TOPIC, start, len(ids)) >= set(ids)
