"""``mlrec serve api --workers 2``: ``/metrics`` speaks for the service, whichever worker
answers the scrape and across a worker's restart.

The API runs as a subprocess on the embedded defaults (SQLite log, local feature
store) in a data directory of the test's own; no model is needed for these metrics.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.serving import closed_port
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Samples = dict[str, list[tuple[dict[str, str], float]]]


class Api:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as answer:
                return int(answer.status), bytes(answer.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def post_events(self, n: int) -> None:
        events = [
            {"user_id": f"u{i % 5}", "item_id": f"i{i % 7}", "event_id": uuid.uuid4().hex}
            for i in range(n)
        ]
        request = urllib.request.Request(
            self.base + "/v1/events",
            data=orjson.dumps({"events": events}),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202

    def scrape(self) -> Samples:
        status, body = self.get("/metrics")
        assert status == 200
        samples: Samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return samples

    def workers(self) -> set[int]:
        """The pids of the uvicorn worker processes (the server's spawned children)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return {
            int(child)
            for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
        }


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    port = closed_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MLREC_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["MLREC_DATA_DIR"] = str(tmp_path / "data")
    mlrec = Path(sys.executable).with_name("mlrec")
    process = subprocess.Popen(
        [str(mlrec), "serve", "api", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Api(process, port)
    try:

        def healthy() -> bool:
            assert process.poll() is None, "the API exited"
            try:
                return server.get("/health")[0] == 200 and len(server.workers()) == 2
            except OSError:
                return False

        wait_for(healthy, 60.0, "the API to answer", interval_s=0.2)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return next((v for got, v in samples.get(name, []) if got == labels), None)


def caught_up(api: Api, applied: int) -> Samples:
    """The samples once the embedded processors applied ``applied`` events and the lag
    was measured since (it is, about every second)."""
    wait_for(
        lambda: value(api.scrape(), "mlrec_stream_events_total", outcome="applied") == applied,
        60.0,
        f"{applied} events applied",
        interval_s=0.2,
    )
    time.sleep(2.5)
    return api.scrape()


def test_two_workers_report_one_series_per_gauge_and_exact_totals_across_a_restart(
    api: Api,
) -> None:
    for _ in range(4):
        api.post_events(10)
    samples = caught_up(api, 40)
    # one series for the service, without a pid label: the group's lag, 0 now
    assert samples["mlrec_stream_consumer_lag_records"] == [({}, 0.0)]

    for _ in range(6):  # scrapes answered by either worker agree
        samples = api.scrape()
        assert value(samples, "mlrec_api_events_accepted_total", type="view") == 40
        assert value(samples, "mlrec_stream_events_total", outcome="applied") == 40
        assert samples["mlrec_stream_consumer_lag_records"] == [({}, 0.0)]
        assert samples["mlrec_events_spool_pending"] == [({}, 0.0)]
        counts = [
            v
            for labels, v in samples["mlrec_api_request_duration_seconds_count"]
            if labels == {"method": "POST", "route": "/v1/events", "status": "202"}
        ]
        assert counts == [4.0]
        buckets = [
            labels["le"]
            for labels, _ in samples["mlrec_api_request_duration_seconds_bucket"]
            if labels["route"] == "/v1/events"
        ]
        assert buckets[-1] == "+Inf" and len(buckets) == 12

    before = api.workers()
    os.kill(min(before), signal.SIGKILL)
    wait_for(
        lambda: len(api.workers()) == 2 and api.workers() != before,
        60.0,
        "a new worker",
        interval_s=0.2,
    )
    api.post_events(10)
    samples = caught_up(api, 50)
    assert value(samples, "mlrec_api_events_accepted_total", type="view") == 50
    assert samples["mlrec_stream_consumer_lag_records"] == [({}, 0.0)]
    assert samples["mlrec_events_spool_pending"] == [({}, 0.0)]
