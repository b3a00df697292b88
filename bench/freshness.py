"""Freshness: from POST /v1/events returning 202 to a recommendation that reflects it.

Through the real path: API (uvicorn) -> Kafka (acks=all) -> `mlrec serve stream`
(a separate process) -> Redis -> the next GET /v1/recommendations. A background
process posts 1,000 events/s (batches of 50 every 50 ms) the whole time. Each probe
is a brand-new user: before the event they get popular items; the probe ends when
the answer is ``source: personal`` (their live history was read from Redis).

    python bench/freshness.py [--probes 200]

A probe that sees no personal answer within ``--timeout`` seconds (10) counts as
exactly its timeout in the percentiles (a censored sample: the true latency is at
least that), the number of timeouts is printed, and the script exits 1 if any probe
timed out (after printing its figures).

Last line: ``freshness: p99_ms=<x>`` (also prints p50 and max). Gorse: ~60 s (1-minute
worker tick); Metarank: <= 1 s (batched Redis writes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _services import ROOT, ensure_services, publish_production, wait_until_ok
from mlrec.data import make_demo
from mlrec.models import create_model

LOAD_SCRIPT = """
import json, random, sys, time, urllib.request
url, items = sys.argv[1], json.loads(sys.argv[2])
rate, seconds = int(sys.argv[3]), float(sys.argv[4])
batch = 50
interval = batch / rate
end = time.monotonic() + seconds
sent = 0
next_at = time.monotonic()
while time.monotonic() < end:
    events = [{"user_id": f"bg{random.randrange(5000)}", "item_id": random.choice(items),
               "type": "view"} for _ in range(batch)]
    req = urllib.request.Request(url, json.dumps({"events": events}).encode(),
                                 {"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
    sent += batch
    next_at += interval
    time.sleep(max(0.0, next_at - time.monotonic()))
print(sent)
"""


def get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def post(url: str, body: dict[str, object]) -> int:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def wait_caught_up(metrics_url: str, timeout: float = 300.0) -> None:
    """Wait until the stream processor reports zero lag in two samples (1.5 s apart; the
    processor updates the gauge about every second).

    One zero is not enough: the gauge reads 0 before partitions are assigned.
    """
    deadline = time.monotonic() + timeout
    zeros = 0
    while time.monotonic() < deadline and zeros < 2:
        try:
            with urllib.request.urlopen(metrics_url, timeout=2) as response:
                text = response.read().decode()
            lag = next(
                float(line.split()[1])
                for line in text.splitlines()
                if line.startswith("mlrec_stream_consumer_lag_records ")
            )
            zeros = zeros + 1 if lag == 0 else 0
        except (OSError, StopIteration):
            zeros = 0
        time.sleep(1.5)
    if zeros < 2:
        raise RuntimeError("the stream processor did not catch up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--rate", type=int, default=1000, help="background events/s")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds a probe waits (counted as this)"
    )
    args = parser.parse_args()
    timeout_ms = args.timeout * 1000

    services = ensure_services()
    work = Path(tempfile.mkdtemp(prefix="mlrec-bench-fresh-"))
    data = make_demo()
    database = publish_production(create_model("ease").fit(data), work, "demo")
    redis_db = services["MLREC_TEST_REDIS_URL"].rsplit("/", 1)[0] + "/9"
    subprocess.run(["redis-cli", "-u", redis_db, "flushdb"], check=True, capture_output=True)
    env = {
        **os.environ,
        "MLREC_DATA_DIR": str(work),
        "MLREC_DATABASE_URL": database,
        "MLREC_REDIS_URL": redis_db,
        "MLREC_KAFKA_BOOTSTRAP_SERVERS": services["MLREC_TEST_KAFKA_BOOTSTRAP"],
        "PYTHONPATH": str(ROOT / "src"),
    }
    mlrec = str(Path(sys.executable).with_name("mlrec"))
    api = subprocess.Popen(
        [mlrec, "serve", "api", "--port", "8401"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stream = subprocess.Popen(
        # one group across runs: it resumes where the last run stopped instead of
        # replaying the whole topic
        [mlrec, "serve", "stream", "--group", "mlrec-bench-freshness", "--metrics-port", "9401"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = "http://127.0.0.1:8401"
    load = None
    try:
        wait_until_ok(f"{base}/ready")
        items = data.items.ids()
        # a new consumer group starts from the earliest offset: time only once it has
        # caught up with whatever earlier runs left on the topic (lag is sampled about every second)
        wait_caught_up("http://127.0.0.1:9401/metrics")
        load = subprocess.Popen(
            [
                sys.executable,
                "-c",
                LOAD_SCRIPT,
                f"{base}/v1/events",
                json.dumps(items),
                str(args.rate),
                str(args.probes * 0.2 + 30),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        latencies: list[float] = []
        timeouts = 0
        run = uuid.uuid4().hex[:12]  # never a user an earlier run left on the topic
        for probe in range(args.probes):
            user = f"probe-{run}-{probe}"
            item = random.choice(items)
            assert (
                post(f"{base}/v1/events", {"user_id": user, "item_id": item, "type": "click"})
                == 202
            )
            accepted = time.perf_counter()
            while True:
                body = get(f"{base}/v1/recommendations/{user}?k=10")
                elapsed = time.perf_counter() - accepted
                if body["source"] == "personal":
                    latencies.append(elapsed * 1000)
                    break
                if elapsed > args.timeout:
                    timeouts += 1
                    latencies.append(timeout_ms)  # censored: counted as the timeout
                    print(
                        f"probe {probe}: no personal answer after {args.timeout:g} s; /ready: "
                        f"{get(f'{base}/ready')}",
                        flush=True,
                    )
                    break
            time.sleep(0.05)
        load.wait(120)
        sent = int((load.stdout.read() if load.stdout else "0") or 0)
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        for process in (api, stream):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(20)
        shutil.rmtree(work, ignore_errors=True)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"probes {len(latencies)}, of which timed out: {timeouts} (each counted as "
        f"{timeout_ms:.0f} ms); background events sent {sent}"
    )
    bound = ">= " if timeouts else ""  # a censored sample makes a percentile a lower bound
    print(
        f"event accepted -> personalised answer: p50 {p50:.1f} ms  p99 {bound}{p99:.1f} ms  "
        f"max {bound}{latencies[-1]:.1f} ms"
    )
    print("reference: Gorse ~60,000 ms (worker tick); Metarank <= 1,000 ms")
    if timeouts:
        print(
            f"FAIL: {timeouts} of {len(latencies)} probes timed out after {args.timeout:g} s",
            file=sys.stderr,
        )
    print(f"freshness: p99_ms={p99:.1f}")
    return 1 if timeouts else 0


if __name__ == "__main__":
    sys.exit(main())
