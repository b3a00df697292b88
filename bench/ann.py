"""ANN retrieval benchmark: hnswlib (shipped as mlrec.models.ann) vs faiss vs usearch.

A synthetic ALS-like catalogue (default 1,000,000 items x 64-d) is indexed by each
library with the same HNSW graph parameters; each library's ``ef_search`` is then
raised until recall@k against exact search reaches the target on a separate set of
*tuning* queries, so that latencies are compared at (about) equal quality; recall
and latency are then measured on other, held-out queries from the same
distribution (so the reported recall may land a little below the target).
Single-query latency (1 thread) is timed in rounds, each round timing every library
and exact search on the same held-out queries one after the other, and the reported
p50/p99 are medians over rounds (the machine is shared).
All libraries insert items shortest first (see ``mlrec.models.ann.insertion_order``).

    python bench/ann.py                          # 1M items, all installed libraries
    python bench/ann.py --n-items 50000 --libs hnswlib --rounds 2

The last line is the summary for the shipped library (hnswlib via AnnIndex):
``ann: recall100=<x> p99_ms=<x> exact_p99_ms=<x>``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn
from rich.table import Table
from threadpoolctl import threadpool_limits

from mlrec.models.ann import DEFAULT_PARAMS, AnnIndex, exact_search, insertion_order

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
SHIPPED = "hnswlib"
console = Console(stderr=True)


def make_catalogue(n_items: int, n_queries: int, dim: int = 64, seed: int = 0) -> tuple[F32, F32]:
    """Synthetic ALS-like item and user factors (seeded).

    Items lie near a rank-24 subspace, grouped into 512 clusters ("niches") of
    Zipf-distributed sizes, with a little full-rank noise. Norms spread
    log-normally and are larger in popular clusters, as ALS item norms track
    popularity (1st-99th percentile about 0.2-2.3). Users mix one to three clusters
    picked by popularity, plus their own noise.
    """
    rng = np.random.default_rng(seed)
    rank, n_clusters = 24, 512
    basis = rng.standard_normal((rank, dim)) / np.sqrt(rank)
    centers = rng.standard_normal((n_clusters, rank))
    popularity = 1.0 / np.arange(1, n_clusters + 1) ** 1.05
    popularity /= popularity.sum()
    cluster_boost = (popularity / popularity.max()) ** 0.15

    items = np.empty((n_items, dim), np.float32)
    chunk = 200_000
    for start in range(0, n_items, chunk):
        size = min(chunk, n_items - start)
        cluster = rng.choice(n_clusters, size=size, p=popularity)
        latent = centers[cluster] + 0.6 * rng.standard_normal((size, rank))
        vec = latent @ basis + 0.15 * rng.standard_normal((size, dim))
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        norm = cluster_boost[cluster] * rng.lognormal(0.0, 0.45, size)
        items[start : start + size] = vec * norm[:, None]

    n_mix = rng.integers(1, 4, n_queries)
    latent_q = np.zeros((n_queries, rank))
    for i in range(n_queries):
        chosen = rng.choice(n_clusters, size=n_mix[i], p=popularity)
        latent_q[i] = rng.dirichlet(np.ones(n_mix[i])) @ centers[chosen]
    latent_q += 0.4 * rng.standard_normal((n_queries, rank))
    queries = latent_q @ basis + 0.15 * rng.standard_normal((n_queries, dim))
    queries *= rng.lognormal(0.0, 0.3, n_queries)[:, None] / np.linalg.norm(
        queries, axis=1, keepdims=True
    )
    return items, queries.astype(np.float32)


# -- adapters: build(vectors, threads, progress), set_ef(ef), search(q, k, threads) -> ids


class Adapter:
    name = ""

    def build(self, vectors: F32, args: argparse.Namespace, progress: Callable[[float], None]):
        raise NotImplementedError

    def set_ef(self, ef: int) -> None:
        raise NotImplementedError

    def search(self, queries: F32, k: int, threads: int) -> I64:
        raise NotImplementedError


class Hnswlib(Adapter):
    """The shipped implementation: mlrec.models.ann.AnnIndex."""

    name = "hnswlib"

    def build(self, vectors, args, progress):
        self.index = AnnIndex.build(
            vectors, "ip", M=args.M, ef_construction=args.ef_construction, progress=progress
        )

    def set_ef(self, ef):
        self.index.ef_search = ef

    def search(self, queries, k, threads):
        return self.index.search(queries, k, threads=threads)[0]


class Faiss(Adapter):
    name = "faiss"

    def build(self, vectors, args, progress):
        import faiss

        self.faiss = faiss
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        self.index = faiss.IndexHNSWFlat(vectors.shape[1], args.M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = args.ef_construction
        self.order = insertion_order(vectors, "ip")  # faiss ids = insertion positions
        step = 20_000
        for start in range(0, len(vectors), step):
            self.index.add(vectors[self.order[start : start + step]])
            progress(min(1.0, (start + step) / len(vectors)))

    def set_ef(self, ef):
        self.params = self.faiss.SearchParametersHNSW(efSearch=ef)

    def search(self, queries, k, threads):
        self.faiss.omp_set_num_threads(threads or (os.cpu_count() or 1))
        return self.order[self.index.search(queries, k, params=self.params)[1]]


class Usearch(Adapter):
    name = "usearch"

    def build(self, vectors, args, progress):
        from usearch.index import Index

        self.index = Index(
            ndim=vectors.shape[1],
            metric="ip",
            dtype="f32",
            connectivity=args.M,
            expansion_add=args.ef_construction,
        )
        order = insertion_order(vectors, "ip")
        step = 20_000
        for start in range(0, len(vectors), step):
            keys = order[start : start + step]
            self.index.add(keys, vectors[keys], threads=0)
            progress(min(1.0, (start + step) / len(vectors)))

    def set_ef(self, ef):
        self.index.expansion_search = ef

    def search(self, queries, k, threads):
        return self.index.search(queries, k, threads=threads).keys.astype(np.int64)


ADAPTERS: dict[str, type[Adapter]] = {"hnswlib": Hnswlib, "faiss": Faiss, "usearch": Usearch}
MODULES = {"hnswlib": "hnswlib", "faiss": "faiss", "usearch": "usearch"}


@dataclass
class Result:
    name: str
    build_s: float = float("nan")
    ef: int = 0
    recall: float = float("nan")
    """On the held-out queries."""
    tune_recall: float = float("nan")
    """On the tuning queries ``ef`` was chosen on."""
    rounds: list[tuple[float, float]] = field(default_factory=list)  # (p50, p99) per round

    def p(self, which: int) -> float:
        return statistics.median(r[which] for r in self.rounds) if self.rounds else float("nan")


def recall_at_k(found: I64, truth: I64) -> float:
    hits = sum(len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def time_queries(search: Callable[[F32], Any], queries: F32) -> tuple[float, float]:
    """(p50, p99) in ms of one-query-at-a-time searches."""
    times = np.empty(len(queries))
    for i in range(len(queries)):
        one = queries[i : i + 1]
        start = time.perf_counter_ns()
        search(one)
        times[i] = (time.perf_counter_ns() - start) / 1e6
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main(argv: list[str] | None = None) -> int:
    installed = [name for name in ADAPTERS if importlib.util.find_spec(MODULES[name])]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-items", type=int, default=1_000_000)
    parser.add_argument("--n-queries", type=int, default=1_000, help="held-out, reported")
    parser.add_argument(
        "--tune-queries", type=int, default=1_000, help="separate queries ef_search is tuned on"
    )
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--libs", default=",".join(installed), help="comma-separated")
    parser.add_argument("--M", type=int, default=DEFAULT_PARAMS["M"])
    parser.add_argument("--ef-construction", type=int, default=DEFAULT_PARAMS["ef_construction"])
    parser.add_argument("--ef-grid", default="100,128,160,200,256,320,400,512,640,800,1024,1536")
    parser.add_argument("--recall-target", type=float, default=0.95)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--exact-queries", type=int, default=300, help="timed per round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    libs = [name.strip() for name in args.libs.split(",") if name.strip()]
    for name in libs:
        if name not in installed:
            parser.error(f"{name} is not installed (installed: {', '.join(installed)})")

    started = time.perf_counter()
    console.log(
        f"catalogue: {args.n_items:,} items x {args.dim}, {args.tune_queries:,} tuning + "
        f"{args.n_queries:,} held-out queries"
    )
    items, all_queries = make_catalogue(
        args.n_items, args.tune_queries + args.n_queries, args.dim, args.seed
    )
    # disjoint query sets from one distribution: ef_search is chosen on the first,
    # recall and latency are reported on the second
    tune_queries, queries = all_queries[: args.tune_queries], all_queries[args.tune_queries :]
    tune_truth, _ = exact_search(items, tune_queries, args.k)
    truth, _ = exact_search(items, queries, args.k)
    console.log(f"ground truth ready ({time.perf_counter() - started:.0f}s)")

    results = {name: Result(name) for name in libs}
    adapters: dict[str, Adapter] = {}
    grid = sorted(int(x) for x in args.ef_grid.split(","))
    columns = (BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    for name in libs:
        adapter = ADAPTERS[name]()
        with Progress("build {task.description}", *columns, console=console) as bar:
            task = bar.add_task(name, total=1.0)
            start = time.perf_counter()
            adapter.build(items, args, lambda f, t=task: bar.update(t, completed=f))
            results[name].build_s = time.perf_counter() - start
        for ef in grid:  # smallest ef reaching the target on the tuning queries
            adapter.set_ef(ef)
            tune_recall = recall_at_k(adapter.search(tune_queries, args.k, 0), tune_truth)
            results[name].ef, results[name].tune_recall = ef, tune_recall
            if tune_recall >= args.recall_target:
                break
        adapter.set_ef(results[name].ef)
        results[name].recall = recall_at_k(adapter.search(queries, args.k, 0), truth)
        console.log(
            f"{name}: built in {results[name].build_s:.0f}s, "
            f"ef_search={results[name].ef} (tuning recall@{args.k}="
            f"{results[name].tune_recall:.4f}), held-out recall@{args.k}="
            f"{results[name].recall:.4f}"
        )
        adapters[name] = adapter

    exact = Result("exact", build_s=0.0, ef=0, recall=1.0, tune_recall=1.0)
    exact_q = queries[: args.exact_queries]
    with threadpool_limits(limits=1):
        for round_no in range(args.rounds):
            for name, adapter in adapters.items():
                results[name].rounds.append(
                    time_queries(lambda q, a=adapter: a.search(q, args.k, 1), queries)
                )
            exact.rounds.append(time_queries(lambda q: exact_search(items, q, args.k), exact_q))
            console.log(f"latency round {round_no + 1}/{args.rounds} done")

    table = Table(
        title=f"ANN @ {args.n_items:,} x {args.dim}, k={args.k}, M={args.M}, "
        f"ef_construction={args.ef_construction}, 1-thread queries; ef_search tuned on "
        f"{args.tune_queries:,} queries, reported on {args.n_queries:,} others"
    )
    columns_ = (
        "library",
        "build s",
        "ef_search",
        f"tuning recall@{args.k}",
        f"held-out recall@{args.k}",
        "p50 ms",
        "p99 ms",
    )
    for column in columns_:
        table.add_column(column, justify="left" if column == "library" else "right")
    for r in [*results.values(), exact]:
        table.add_row(
            r.name if r.name != SHIPPED else f"{r.name} (shipped)",
            f"{r.build_s:.1f}",
            str(r.ef) if r.ef else "-",
            f"{r.tune_recall:.4f}",
            f"{r.recall:.4f}",
            f"{r.p(0):.3f}",
            f"{r.p(1):.3f}",
        )
    Console().print(table)
    ok = [r for r in results.values() if r.tune_recall >= args.recall_target]
    if ok:
        best = min(ok, key=lambda r: r.p(1))
        print(
            f"fastest p99 with ef_search tuned to recall>={args.recall_target}: {best.name} "
            f"(held-out recall {best.recall:.4f})"
        )
    print(f"total time: {time.perf_counter() - started:.0f}s")
    chosen = results.get(SHIPPED) or next(iter(results.values()), exact)
    print(
        f"ann: recall{args.k}={chosen.recall:.4f} p99_ms={chosen.p(1):.3f} "
        f"exact_p99_ms={exact.p(1):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
