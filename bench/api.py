"""API latency/throughput: GET /v1/recommendations vs a bare FastAPI endpoint.

mlrec serves the ML-100K EASE model with live Redis features (each request reads the
user's recent items from Redis, scores history = training + live items with EASE over
1,682 items, takes the top-10, attaches titles). The bare endpoint returns a JSON
payload of the same size from memory: the framework's floor on this machine. Both run
under the same uvicorn settings; load comes from ``wrk`` in a separate process. Rounds
alternate bare / bare ASGI (no framework: mlrec's hot route answers below FastAPI's
per-request stack, so this floor is printed too) / mlrec / mlrec-unbatched; figures
are medians over rounds.

    python bench/api.py [--rounds 3] [--seconds 8] [--connections 32] [--workers 1]

Last line: ``api: throughput_ratio=<mlrec/bare req/s> p99_ratio=<mlrec/bare p99>``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _services import ROOT, dataset_dir, ensure_services, publish_production, wait_until_ok
from mlrec.backends.factory import (
    open_online_store,
)
from mlrec.data import load_movielens_100k
from mlrec.features.realtime import Interaction, RealtimeFeatures
from mlrec.models import create_model

BARE_APP = textwrap.dedent(
    """
    import json, os
    from fastapi import FastAPI, Response
    PAYLOAD = open(os.environ["BARE_PAYLOAD"], "rb").read()
    app = FastAPI()

    @app.get("/v1/recommendations/{user_id}")
    async def recommendations(user_id: str, k: int = 10) -> Response:
        return Response(PAYLOAD, media_type="application/json")
    """
)

# The server's floor without a framework: for reference, since mlrec's hot route
# sends its successful answers below FastAPI's per-request stack.
BARE_ASGI_APP = textwrap.dedent(
    """
    import os
    PAYLOAD = open(os.environ["BARE_PAYLOAD"], "rb").read()
    LENGTH = str(len(PAYLOAD)).encode()
    HEADERS = [(b"content-type", b"application/json"), (b"content-length", LENGTH)]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": PAYLOAD})
    """
)

WRK_SCRIPT = textwrap.dedent(
    """
    local users = {%s}
    local n = 0
    request = function()
      n = n + 1
      return wrk.format("GET", "/v1/recommendations/" .. users[(n %% #users) + 1] .. "?k=10")
    end
    """
)


def start_server(
    app: str, port: int, env: dict[str, str], workers: int, factory: bool
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    if factory:
        cmd.append("--factory")
    process = subprocess.Popen(cmd, env=env, start_new_session=True)
    wait_until_ok(f"http://127.0.0.1:{port}/v1/recommendations/1?k=10")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def run_wrk(port: int, script: Path, seconds: int, connections: int) -> tuple[float, float]:
    """(requests/s, p99 ms) from one wrk run (2 threads; the machine has 2 cores)."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99, out
    value, unit = float(p99.group(1)), p99.group(2)
    p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses:\n{out}")
    return rps, p99_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)

    services = ensure_services()
    redis_url = services["MLREC_TEST_REDIS_URL"]
    work = Path(tempfile.mkdtemp(prefix="mlrec-bench-api-"))
    data = load_movielens_100k(dataset_dir() / "ml-100k")
    database = publish_production(create_model("ease").fit(data), work, "ml-100k")

    # live history in Redis for every user: five recent items each
    online = open_online_store(redis_url)
    realtime = RealtimeFeatures(online)
    now = time.time()
    users = data.users.ids()
    items = data.items.ids()
    realtime.record(
        [
            Interaction(u, items[(n * 7 + j) % len(items)], now - j)
            for n, u in enumerate(users)
            for j in range(5)
        ]
    )
    online.close()

    env = {
        **os.environ,
        "MLREC_DATA_DIR": str(work),
        "MLREC_DATABASE_URL": database,
        "MLREC_REDIS_URL": redis_url,
        "MLREC_EMBEDDED_STREAM": "false",
        "PYTHONPATH": str(ROOT / "src"),
    }
    script = work / "users.lua"
    script.write_text(WRK_SCRIPT % ", ".join(f'"{u}"' for u in users))

    results: dict[str, list[tuple[float, float]]] = {
        "bare": [],
        "bare-asgi": [],
        "mlrec": [],
        "mlrec-nobatch": [],
    }
    payload_file = work / "payload.json"
    mlrec = start_server("mlrec.services.api.app:create_app", 8301, env, args.workers, True)
    with urllib.request.urlopen(f"http://127.0.0.1:8301/v1/recommendations/{users[0]}?k=10") as r:
        payload = r.read()
    stop(mlrec)
    payload_file.write_bytes(payload)
    bare_env = {**env, "BARE_PAYLOAD": str(payload_file)}
    (work / "bare_app.py").write_text(BARE_APP)
    (work / "bare_asgi_app.py").write_text(BARE_ASGI_APP)
    bare_env["PYTHONPATH"] = f"{work}:{env['PYTHONPATH']}"

    configs = {
        "bare": ("bare_app:app", 8300, bare_env, False),
        "bare-asgi": ("bare_asgi_app:app", 8303, bare_env, False),
        "mlrec": ("mlrec.services.api.app:create_app", 8301, env, True),
        "mlrec-nobatch": (
            "mlrec.services.api.app:create_app",
            8302,
            {**env, "MLREC_BATCH_SIZE": "1"},
            True,
        ),
    }
    for round_no in range(args.rounds):
        for name, (app, port, app_env, factory) in configs.items():
            server = start_server(app, port, app_env, args.workers, factory)
            try:
                run_wrk(port, script, 2, args.connections)  # warm-up
                results[name].append(run_wrk(port, script, args.seconds, args.connections))
            finally:
                stop(server)
            rps, p99 = results[name][-1]
            print(
                f"round {round_no + 1} {name:>14}: {rps:8.0f} req/s  p99 {p99:7.2f} ms", flush=True
            )

    print(f"\npayload {len(payload)} bytes; {args.workers} worker(s); wrk -t2 -c{args.connections}")
    print(f"{'server':>14} {'req/s (median)':>15} {'p99 ms (median)':>16}")
    summary: dict[str, tuple[float, float]] = {}
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        p99 = statistics.median(p for _, p in runs)
        summary[name] = (rps, p99)
        print(f"{name:>14} {rps:15.0f} {p99:16.2f}")
    batching = summary["mlrec"][0] / summary["mlrec-nobatch"][0]
    print(f"micro-batching: {batching:.2f}x the throughput of batch size 1")
    print(
        f"for reference, against the framework-free ASGI floor: throughput "
        f"{summary['mlrec'][0] / summary['bare-asgi'][0]:.2f}, "
        f"p99 {summary['mlrec'][1] / summary['bare-asgi'][1]:.2f}"
    )
    throughput_ratio = summary["mlrec"][0] / summary["bare"][0]
    p99_ratio = summary["mlrec"][1] / summary["bare"][1]
    shutil.rmtree(work, ignore_errors=True)
    print(f"api: throughput_ratio={throughput_ratio:.2f} p99_ratio={p99_ratio:.2f}")


if __name__ == "__main__":
    main()
