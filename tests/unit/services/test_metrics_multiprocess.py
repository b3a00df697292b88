"""``/metrics`` of several API workers (``PROMETHEUS_MULTIPROC_DIR``): each gauge is one
series for the service, not one per worker process, and a worker that is gone (it
crashed, uvicorn restarted it) leaves its counts but not its gauges behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlrec.services.api.routes import health

# A stand-in worker: the real metric objects, in a process of its own writing to the
# shared directory; it sets what a worker would have measured and stays alive.
_WORKER = """
import sys
from mlrec.backends.spool import PENDING
from mlrec.events.processor import EVENTS, LAG
from mlrec.services.api.model_server import MODEL_ERROR
pending, lag, applied, model_error = map(int, sys.argv[1:5])
PENDING.set(pending)
LAG.set(lag)
MODEL_ERROR.set(model_error)
EVENTS.labels("applied").inc(applied)
print("ready", flush=True)
sys.stdin.read()
"""


class Workers:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[subprocess.Popen[str]] = []

    def start(
        self, pending: int, lag: int, applied: int, model_error: int = 0
    ) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", _WORKER, *map(str, (pending, lag, applied, model_error))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self.directory)},
            text=True,
        )
        self.processes.append(process)
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture
def workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workers]:
    directory = tmp_path / "metrics"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    started = Workers(directory)
    yield started
    started.stop()


def scrape() -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of ``/metrics`` by sample name: (labels, value)."""
    text = bytes(health.metrics().body).decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def test_spool_pending_and_consumer_lag_are_one_series_each_across_workers(
    workers: Workers,
) -> None:
    # each worker has a spool of its own: the service's backlog is their sum; only
    # one worker's embedded consumer reads at a time (lag 0 here), the idle one's
    # stands where it last read and overstates the group's lag
    workers.start(pending=3, lag=40, applied=7)
    workers.start(pending=4, lag=0, applied=5, model_error=1)

    samples = scrape()

    assert samples["mlrec_events_spool_pending"] == [({}, 7.0)]
    assert samples["mlrec_stream_consumer_lag_records"] == [({}, 0.0)]
    assert samples["mlrec_api_model_error"] == [({}, 1.0)]  # a worker is stuck
    assert samples["mlrec_stream_events_total"] == [({"outcome": "applied"}, 12.0)]


def test_a_dead_workers_gauges_are_dropped_while_its_counts_remain(workers: Workers) -> None:
    workers.start(pending=3, lag=40, applied=7)
    gone = workers.start(pending=4, lag=0, applied=5, model_error=1)
    gone.send_signal(signal.SIGKILL)
    gone.wait()

    samples = scrape()

    assert samples["mlrec_events_spool_pending"] == [({}, 3.0)]
    assert samples["mlrec_stream_consumer_lag_records"] == [({}, 40.0)]
    assert samples["mlrec_api_model_error"] == [({}, 0.0)]
    assert samples["mlrec_stream_events_total"] == [({"outcome": "applied"}, 12.0)]
    assert scrape() == samples  # the next scrape (another worker's) agrees
