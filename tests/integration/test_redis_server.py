"""The test Redis is real: values round-trip and expire on their TTL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    yield client
    client.close()


def test_set_with_ex_round_trips_and_reports_ttl(client: redis.Redis, unique_name: str) -> None:
    try:
        assert client.set(unique_name, "v1", ex=30)
        assert client.get(unique_name) == "v1"
        assert 0 < client.ttl(unique_name) <= 30
    finally:
        client.delete(unique_name)


def test_set_with_px_expires_after_ttl(client: redis.Redis, unique_name: str) -> None:
    assert client.set(unique_name, "short-lived", px=300)
    assert client.get(unique_name) == "short-lived"
    assert 0 < client.pttl(unique_name) <= 300

    deadline = time.monotonic() + 5
    while client.exists(unique_name) and time.monotonic() < deadline:
        time.sleep(0.05)

    assert client.get(unique_name) is None
    assert client.pttl(unique_name) == -2  # Redis: "no such key"
