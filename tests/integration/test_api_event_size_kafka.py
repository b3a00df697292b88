"""An event Kafka would refuse for its size is refused by the API (422), never accepted
into the spool, where it would block every later event (the real broker)."""

from __future__ import annotations

import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mlrec.backends.kafka import KafkaConsumer, KafkaProducer, ensure_topics
from mlrec.backends.spool import DurableProducer
from mlrec.services.api.routes import events
from tests.contracts.event_log import poll_until

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"t.api-size.{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, {name: 1})
    monkeypatch.setattr(events, "INTERACTIONS_TOPIC", name)  # the route writes here
    return name


@pytest.fixture
def producer(kafka_bootstrap: str, topic: str, tmp_path: Path) -> Iterator[DurableProducer]:
    durable = DurableProducer(KafkaProducer(kafka_bootstrap), tmp_path / "spool")
    yield durable
    durable.close()


def test_an_event_too_large_for_kafka_is_refused_and_does_not_block_the_others(
    kafka_bootstrap: str, topic: str, producer: DurableProducer
) -> None:
    app = FastAPI()
    app.include_router(events.router)
    app.state.mlrec = types.SimpleNamespace(producer=producer)
    client = TestClient(app)

    def post(event_id: str, **extra: object) -> tuple[int, bool | None]:
        body = {"event_id": event_id, "user_id": "u1", "item_id": "i1", **extra}
        response = client.post("/v1/events", json=body)
        return response.status_code, response.json().get("spooled")

    assert post("small-1") == (202, False)
    status, _ = post("big", context={"x": "a" * 1_200_000})
    assert status == 422
    assert [post(f"after-{i}") for i in range(3)] == [(202, False)] * 3
    assert producer.spooled() == 0 and not producer.degraded

    consumer = KafkaConsumer(kafka_bootstrap, f"{topic}.g", [topic])
    try:
        records = poll_until(consumer, 4, 20.0)
    finally:
        consumer.close()
    assert [b'"event_id":"big"' in r.value for r in records] == [False] * 4
