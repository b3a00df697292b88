"""API latency/throughput: GET /v1/recommendations vs a bare FastAPI endpoint.

mlrec serves the ML-100K EASE model with live Redis features (each request reads the
user's recent items from Redis, scores history = training + live items with EASE over
1,682 items, takes the top-10, attaches titles). The bare endpoint returns a JSON
payload of the same size from memory: the framework's floor on this machine. Both run
under the same uvicorn settings; load comes from ``wrk`` in a separate process. Rounds
alternate bare / bare ASGI (no framework: mlrec's hot route answers below FastAPI's
per-request stack, so this floor is printed too) / mlrec / mlrec-unbatched /
mlrec without the user score cache; figures are medians over rounds.

The headline is mlrec in its default configuration, whose user score cache
(``MLREC_SCORE_CACHE_MB``, 256 MiB) holds the training-history scores of every one of
ML-100K's 943 users and is warm (the untimed warm-up requests every user once, then
runs wrk for 2 s), so every timed request is a cache hit: the share of hits in the
timed runs is read from ``/metrics`` and printed. ``mlrec-nocache``
(``MLREC_SCORE_CACHE_MB=0``) scores each whole history per request; its ratio to bare
is printed beside the headline.

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


CACHE_LINE = re.compile(
    r'^mlrec_api_user_score_cache_total\{result="(hit|miss)"\}\s+([\d.e+]+)', re.M
)


def cache_lookups(port: int) -> dict[str, float] | None:
    """The server's user score cache lookups so far ({"hit": n, "miss": n}), if exposed."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    counts = {"hit": 0.0, "miss": 0.0}
    for result, value in CACHE_LINE.findall(text):
        counts[result] += float(value)
    return counts


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
        "mlrec-nocache": [],
    }
    # hit share of the user score cache during the timed runs, per mlrec variant
    hit_share: dict[str, list[float]] = {name: [] for name in results if name.startswith("mlrec")}
    payload_file = work / "payload.json"
    mlrec = start_server("mlrec.services.api.app:create_app", 8301, env, args.workers, True)
    # answers differ in size (titles): the bare servers send one of median size
    answers = []
    for user in users:
        with urllib.request.urlopen(f"http://127.0.0.1:8301/v1/recommendations/{user}?k=10") as r:
            answers.append(r.read())
    stop(mlrec)
    payload = sorted(answers, key=len)[len(answers) // 2]
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
        "mlrec-nocache": (
            "mlrec.services.api.app:create_app",
            8304,
            {**env, "MLREC_SCORE_CACHE_MB": "0"},
            True,
        ),
    }
    cache_mb = int(env.get("MLREC_SCORE_CACHE_MB", "256"))
    cache_users = (cache_mb << 20) // (4 * data.n_items)
    for round_no in range(args.rounds):
        for name, (app, port, app_env, factory) in configs.items():
            server = start_server(app, port, app_env, args.workers, factory)
            try:
                # warm-up: every user once (so a score cache holds all of them, whatever
                # the server's speed), then 2 s of load
                for user in users:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/v1/recommendations/{user}?k=10"
                    ) as response:
                        response.read()
                run_wrk(port, script, 2, args.connections)
                before = cache_lookups(port) if name in hit_share else None
                results[name].append(run_wrk(port, script, args.seconds, args.connections))
                after = cache_lookups(port) if before is not None else None
            finally:
                stop(server)
            rps, p99 = results[name][-1]
            cache = ""
            if before is not None and after is not None:
                hits, misses = after["hit"] - before["hit"], after["miss"] - before["miss"]
                if hits + misses:
                    hit_share[name].append(hits / (hits + misses))
                    cache = f"  score cache hits {hits / (hits + misses):6.1%}"
                else:
                    cache = "  score cache not used"
            print(
                f"round {round_no + 1} {name:>14}: {rps:8.0f} req/s  p99 {p99:7.2f} ms{cache}",
                flush=True,
            )

    print(f"\npayload {len(payload)} bytes; {args.workers} worker(s); wrk -t2 -c{args.connections}")
    held = (
        f"holds all {len(users)} users"
        if cache_users >= len(users)
        else f"holds {cache_users} of {len(users)} users"
    )
    notes = {
        "bare": "FastAPI, payload from memory",
        "bare-asgi": "no framework, payload from memory",
        "mlrec": f"default config; score cache ({cache_mb} MiB, room for {cache_users:,} users) "
        f"{held}, warmed by the warm-up run",
        "mlrec-nobatch": f"MLREC_BATCH_SIZE=1; score cache {held}, warmed by the warm-up run",
        "mlrec-nocache": "MLREC_SCORE_CACHE_MB=0: no score cache",
    }
    print(f"{'server':>14} {'req/s (median)':>15} {'p99 ms (median)':>16} {'cache hits':>10}  note")
    summary: dict[str, tuple[float, float]] = {}
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        p99 = statistics.median(p for _, p in runs)
        summary[name] = (rps, p99)
        shares = hit_share.get(name)
        hits = f"{statistics.median(shares):.1%}" if shares else "-"
        print(f"{name:>14} {rps:15.0f} {p99:16.2f} {hits:>10}  {notes[name]}")
    batching = summary["mlrec"][0] / summary["mlrec-nobatch"][0]
    print(f"micro-batching: {batching:.2f}x the throughput of batch size 1")
    print(
        f"score cache: {summary['mlrec'][0] / summary['mlrec-nocache'][0]:.2f}x the throughput "
        f"without it (headline's timed requests that were cache hits: "
        f"{statistics.median(hit_share['mlrec']) if hit_share['mlrec'] else float('nan'):.1%})"
    )
    print(
        f"for reference, against the framework-free ASGI floor: throughput "
        f"{summary['mlrec'][0] / summary['bare-asgi'][0]:.2f}, "
        f"p99 {summary['mlrec'][1] / summary['bare-asgi'][1]:.2f}"
    )
    throughput_ratio = summary["mlrec"][0] / summary["bare"][0]
    p99_ratio = summary["mlrec"][1] / summary["bare"][1]
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"throughput ratio to bare: mlrec (default, warm score cache: {held}) "
        f"{throughput_ratio:.2f}; mlrec-nocache (MLREC_SCORE_CACHE_MB=0) "
        f"{summary['mlrec-nocache'][0] / summary['bare'][0]:.2f} "
        f"(p99 ratio {summary['mlrec-nocache'][1] / summary['bare'][1]:.2f})"
    )
    print(f"api: throughput_ratio={throughput_ratio:.2f} p99_ratio={p99_ratio:.2f}")


if __name__ == "__main__":
    main()
