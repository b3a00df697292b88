"""Online feature reads: mlrec on Redis vs raw redis-py vs Feast on the same Redis.

Same data for all three: 10,000 entities x 10 float features. Each round times, for
1 and 100 entities per call, (a) ``FeatureStore.get_online_features`` over
:class:`~mlrec.backends.redis_features.RedisOnlineStore`, (b) raw redis-py
(``HMGET`` of the same hashes, pipelined for 100, decoded to floats: the floor), and
(c) Feast 0.67 ``get_online_features(...).to_dict()`` with its Redis online store, in
its own virtualenv (a long-lived subprocess that times its calls and answers JSON).
Rounds alternate between the three; figures are medians over rounds of each round's
p50/p99. Then streaming-update throughput: ``push_recent + increment + add_decayed``
per event vs raw ``HSET``.

    python bench/features.py              # uses MLREC_TEST_REDIS_URL, or starts redis-server
    python bench/features.py --skip-feast # no Feast (no virtualenv needed)

The last line is ``features: vs_raw_1=<x> vs_raw_100=<x> feast_over_mlrec_100=<x>``
(p50 ratios; ``nan`` for Feast when skipped). Goals: vs_raw <= 1.3, feast_over >= 2.5.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import redis

from mlrec.backends.redis_features import RedisOnlineStore
from mlrec.features.definitions import Feature, FeatureView, ValueType
from mlrec.features.online_store import CounterUpdate, RecentEntry
from mlrec.features.store import FeatureStore

N_ENTITIES = 10_000
N_FEATURES = 10
FEATURES = [f"f{j}" for j in range(N_FEATURES)]
VIEW = "bench_user"
FEAST_VERSION = "0.67.0"
_F64 = struct.Struct("<d")

# -- Redis ----------------------------------------------------------------------------------


def redis_url(work: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    """MLREC_TEST_REDIS_URL, or a throwaway redis-server on port 6391."""
    url = os.environ.get("MLREC_TEST_REDIS_URL", "").strip()
    if url:
        return url, None
    port = 6391
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--bind",
            "127.0.0.1",
            "--dir",
            str(work),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            return url, proc
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start; set MLREC_TEST_REDIS_URL")


# -- Feast ----------------------------------------------------------------------------------

FEAST_SERVER = textwrap.dedent(
    """
    import json, random, sys, time
    from feast import FeatureStore
    store = FeatureStore(repo_path=sys.argv[1])
    refs = [f"user_stats:f{j}" for j in range(10)]
    ids = [f"u{i}" for i in range(10_000)]
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if "check" in req:
            got = store.get_online_features(features=refs, entity_rows=[{"user_id": req["check"]}])
            print(json.dumps(got.to_dict()), flush=True)
            continue
        rng = random.Random(req["seed"])
        out = []
        for _ in range(req["calls"]):
            rows = [{"user_id": e} for e in rng.sample(ids, req["batch"])]
            start = time.perf_counter_ns()
            store.get_online_features(features=refs, entity_rows=rows).to_dict()
            out.append(time.perf_counter_ns() - start)
        print(json.dumps(out), flush=True)
    """
)

FEAST_REPO = textwrap.dedent(
    """
    from datetime import timedelta
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    source = FileSource(path={parquet!r}, timestamp_field="event_timestamp")
    user_stats = FeatureView(
        name="user_stats",
        entities=[user],
        ttl=timedelta(days=3650),
        schema=[Field(name=f"f{{j}}", dtype=Float64) for j in range(10)],
        source=source,
        online=True,
    )
    """
)

MAKE_PARQUET = textwrap.dedent(
    """
    import sys
    import numpy as np, pandas as pd
    values = np.load(sys.argv[1])
    frame = pd.DataFrame(values, columns=[f"f{j}" for j in range(values.shape[1])])
    frame.insert(0, "user_id", [f"u{i}" for i in range(len(values))])
    frame["event_timestamp"] = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1)
    frame.to_parquet(sys.argv[2])
    """
)


def feast_db(url: str) -> tuple[str, int]:
    """``host:port`` and a database number different from mlrec's (Feast's keys are
    overwritten by each materialization, so nothing is flushed)."""
    parsed = redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    db = (int(parsed.get("db", 0)) + 1) % 16
    return f"{parsed.get('host', '127.0.0.1')}:{parsed.get('port', 6379)}", db


class Feast:
    """Feast in its own virtualenv, serving timing requests over a pipe."""

    def __init__(self, work: Path, url: str, values: np.ndarray) -> None:
        venv = work / "feast-venv"
        python = venv / "bin" / "python"
        if not (venv / "bin" / "feast").exists():
            print(f"installing feast=={FEAST_VERSION} into {venv} ...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"feast[redis]=={FEAST_VERSION}"],
                check=True,
            )
        repo = work / "feast_repo"
        shutil.rmtree(repo, ignore_errors=True)
        (repo / "data").mkdir(parents=True)
        np.save(work / "values.npy", values)
        parquet = repo / "data" / "users.parquet"
        subprocess.run(
            [str(python), "-c", MAKE_PARQUET, str(work / "values.npy"), str(parquet)], check=True
        )
        hostport, db = feast_db(url)
        (repo / "feature_store.yaml").write_text(
            "project: mlrecbench\n"
            "registry: data/registry.db\n"
            "provider: local\n"
            "online_store:\n"
            "  type: redis\n"
            f'  connection_string: "{hostport},db={db}"\n'
            "offline_store:\n"
            "  type: file\n"
            "entity_key_serialization_version: 3\n"
        )
        (repo / "repo.py").write_text(FEAST_REPO.format(parquet=str(parquet)))
        feast = str(venv / "bin" / "feast")
        quiet = {"stdout": subprocess.DEVNULL, "check": True, "cwd": repo}
        subprocess.run([feast, "apply"], **quiet)  # type: ignore[call-overload]
        end = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 60))
        subprocess.run([feast, "materialize", "2000-01-01T00:00:00", end], **quiet)  # type: ignore[call-overload]
        self.proc = subprocess.Popen(
            [str(python), "-c", FEAST_SERVER, str(repo)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        json.loads(self.proc.stdout.readline())

    def time_calls(self, batch: int, calls: int, seed: int) -> list[int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"batch": batch, "calls": calls, "seed": seed}) + "\n")
        self.proc.stdin.flush()
        return list(json.loads(self.proc.stdout.readline()))

    def values_of(self, entity_id: str) -> list[float]:
        """Feast's values of one entity (to check it serves the same data)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"check": entity_id}) + "\n")
        self.proc.stdin.flush()
        got = json.loads(self.proc.stdout.readline())
        return [got[f][0] for f in FEATURES]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


# -- timing -----------------------------------------------------------------------------------


def time_calls(fn: Callable[[list[str]], object], batch: int, calls: int, seed: int) -> list[int]:
    ids = [f"u{i}" for i in range(N_ENTITIES)]
    rng = random.Random(seed)
    out = []
    for _ in range(calls):
        chosen = rng.sample(ids, batch)
        start = time.perf_counter_ns()
        fn(chosen)
        out.append(time.perf_counter_ns() - start)
    return out


def pct(samples: Sequence[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def raw_reader(client: redis.Redis, prefix: str) -> Callable[[list[str]], list[list[float]]]:
    """The floor: HMGET (pipelined for several entities), values unpacked to floats."""
    unpack = _F64.unpack

    def read(entity_ids: list[str]) -> list[list[float]]:
        if len(entity_ids) == 1:
            replies = [client.hmget(prefix + entity_ids[0], FEATURES)]
        else:
            pipe = client.pipeline(transaction=False)
            for e in entity_ids:
                pipe.hmget(prefix + e, FEATURES)
            replies = pipe.execute()
        return [[unpack(v)[0] for v in reply] for reply in replies]  # type: ignore[arg-type]

    return read


def bench_reads(
    store: FeatureStore,
    online: RedisOnlineStore,
    raw: redis.Redis,
    feast: Feast | None,
    rounds: int,
) -> dict[int, dict[str, tuple[float, float]]]:
    prefix = f"{online.key_prefix}:{VIEW}:"
    systems: dict[str, Callable[[int, int, int], list[int]]] = {
        "mlrec": lambda b, n, s: time_calls(
            lambda ids: store.get_online_features(VIEW, ids), b, n, s
        ),
        "mlrec.read_rows": lambda b, n, s: time_calls(
            lambda ids: online.read_rows(VIEW, ids, FEATURES), b, n, s
        ),
        "raw redis-py": lambda b, n, s: time_calls(raw_reader(raw, prefix), b, n, s),
    }
    if feast is not None:
        systems["feast"] = feast.time_calls
    results: dict[int, dict[str, tuple[float, float]]] = {}
    for batch, calls in ((1, 400), (100, 60)):
        per_round: dict[str, list[tuple[float, float]]] = {name: [] for name in systems}
        names = list(systems)
        for r in range(rounds + 1):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                samples = systems[name](batch, calls, 1000 * r + batch)
                if r > 0:  # round 0 warms up
                    per_round[name].append((pct(samples, 0.5), pct(samples, 0.99)))
        results[batch] = {
            name: (
                statistics.median(p50 for p50, _ in figures),
                statistics.median(p99 for _, p99 in figures),
            )
            for name, figures in per_round.items()
        }
    return results


def bench_writes(online: RedisOnlineStore, raw: redis.Redis, events: int) -> dict[str, float]:
    """Events per second of the streaming updates, one event per call and 100 per call."""
    rng = random.Random(7)
    now = time.time()
    stream = [
        (f"u{rng.randrange(N_ENTITIES)}", f"i{rng.randrange(5000)}", now + k * 1e-3)
        for k in range(events)
    ]
    ttl, half_life = 86_400.0, 3600.0

    def mlrec_batch(chunk: Sequence[tuple[str, str, float]]) -> None:
        online.push_recent("bench_recent", [RecentEntry(u, i, t) for u, i, t in chunk], 50, ttl)
        bucket = int(now // 3600) * 3600
        online.increment(
            "bench_counts",
            [CounterUpdate(u, {f"clicks:{bucket}": 1.0}, t) for u, _, t in chunk],
            ttl,
            drop_before={"clicks": bucket - 86_400},
        )
        online.add_decayed("bench_pop", [(i, 1.0, t) for _, i, t in chunk], half_life, ttl)

    def raw_batch(chunk: Sequence[tuple[str, str, float]]) -> None:
        if len(chunk) == 1:
            u, i, t = chunk[0]
            raw.hset(f"rawbench:{u}", i, repr(t))
            return
        pipe = raw.pipeline(transaction=False)
        for u, i, t in chunk:
            pipe.hset(f"rawbench:{u}", i, repr(t))
        pipe.execute()

    out: dict[str, float] = {}
    for size in (1, 100):
        n = events // 10 if size == 1 else events
        for name, fn in (("mlrec", mlrec_batch), ("raw HSET", raw_batch)):
            start = time.perf_counter()
            for k in range(0, n, size):
                fn(stream[k : k + size])
            out[f"{name} x{size}"] = n / (time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-feast", action="store_true", help="compare mlrec and raw only")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mlrec-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    url, server = redis_url(args.work)
    rng = np.random.default_rng(0)
    values = rng.standard_normal((N_ENTITIES, N_FEATURES))
    view = FeatureView(
        VIEW, "user", tuple(Feature(f, ValueType.FLOAT) for f in FEATURES), ttl_seconds=86_400
    )
    online = RedisOnlineStore(url, key_prefix="mlrecbench", socket_timeout=5.0)
    online.flush_prefix()
    store = FeatureStore(online, [view])
    for start in range(0, N_ENTITIES, 1000):
        store.write_features(
            VIEW,
            {
                f"u{i}": dict(zip(FEATURES, map(float, values[i]), strict=True))
                for i in range(start, start + 1000)
            },
        )
    raw = redis.Redis.from_url(url)
    assert raw_reader(raw, f"mlrecbench:{VIEW}:")(["u42"])[0] == list(values[42])
    assert store.get_online_features(VIEW, ["u42"]).values[0] == list(values[42])

    feast = None if args.skip_feast else Feast(args.work, url, values)
    if feast is not None:
        assert feast.values_of("u42") == list(values[42])
    try:
        reads = bench_reads(store, online, raw, feast, args.rounds)
        writes = bench_writes(online, raw, args.events)
    finally:
        if feast is not None:
            feast.close()
        online.flush_prefix()
        for key in raw.scan_iter(match="rawbench:*", count=1000):
            raw.unlink(key)
        online.close()
        if server is not None:
            server.terminate()

    print(f"\nonline reads, {N_ENTITIES} entities x {N_FEATURES} float features, {url}")
    print(f"{'entities/call':>13}  {'system':<16} {'p50 µs':>9} {'p99 µs':>9} {'p50 / raw':>9}")
    for batch, by_system in reads.items():
        floor = by_system["raw redis-py"][0]
        for name, (p50, p99) in by_system.items():
            print(f"{batch:>13}  {name:<16} {p50:>9.1f} {p99:>9.1f} {p50 / floor:>9.2f}")
    print("\nstreaming updates (push_recent + increment + add_decayed per event)")
    for name, rate in writes.items():
        print(f"  {name:<14} {rate:>10,.0f} events/s")

    vs1 = reads[1]["mlrec"][0] / reads[1]["raw redis-py"][0]
    vs100 = reads[100]["mlrec"][0] / reads[100]["raw redis-py"][0]
    feast100 = math.nan
    if "feast" in reads[100]:
        feast100 = reads[100]["feast"][0] / reads[100]["mlrec"][0]
    print(
        f"features: vs_raw_1={vs1:.2f} vs_raw_100={vs100:.2f} feast_over_mlrec_100={feast100:.2f}"
    )


if __name__ == "__main__":
    main()
