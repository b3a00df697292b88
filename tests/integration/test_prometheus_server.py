"""The test Prometheus is real: it scrapes a target the test serves and answers queries."""

from __future__ import annotations

import random
import time
import uuid

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

pytestmark = pytest.mark.integration

SCRAPE_TIMEOUT_S = 20.0


def _query(prometheus_url: str, promql: str) -> list[dict[str, object]]:
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def test_scrape_of_served_counter_is_queryable(
    prometheus_url: str, prometheus_target: tuple[str, int]
) -> None:
    run = uuid.uuid4().hex
    expected = random.randint(1, 1_000_000)
    registry = CollectorRegistry()
    counter = Counter(
        "mlrec_test_scrape_marker", "Set by the integration test.", ["run"], registry=registry
    )
    counter.labels(run=run).inc(expected)
    host, port = prometheus_target
    server, thread = start_http_server(port, addr=host, registry=registry)
    try:
        promql = f'mlrec_test_scrape_marker_total{{run="{run}"}}'
        deadline = time.monotonic() + SCRAPE_TIMEOUT_S
        result = _query(prometheus_url, promql)
        while not result and time.monotonic() < deadline:
            time.sleep(0.5)
            result = _query(prometheus_url, promql)

        assert result, f"Prometheus did not scrape {host}:{port} within {SCRAPE_TIMEOUT_S}s"
        (sample,) = result
        assert sample["metric"]["job"] == "mlrec-test"  # type: ignore[index]
        assert float(sample["value"][1]) == expected  # type: ignore[index]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
