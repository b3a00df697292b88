"""ANN benchmark (WIP)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


def make_catalogue(n_items: int, n_queries: int, dim: int = 64, seed: int = 0) -> tuple[F32, F32]:
    """Synthetic ALS-like item and user factors.

    Items live near a low-rank subspace, grouped into clusters of Zipf-distributed
    sizes (genres/niches), and their norms spread log-normally with a boost for
    popular clusters (ALS item norms track popularity). Users mix one to three
    clusters, weighted by cluster popularity.
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
        weights = rng.dirichlet(np.ones(n_mix[i]))
        latent_q[i] = weights @ centers[chosen]
    latent_q += 0.4 * rng.standard_normal((n_queries, rank))
    queries = latent_q @ basis + 0.15 * rng.standard_normal((n_queries, dim))
    queries *= rng.lognormal(0.0, 0.3, n_queries)[:, None] / np.linalg.norm(
        queries, axis=1, keepdims=True
    )
    return items, queries.astype(np.float32)


def exact_topk(items: F32, queries: F32, k: int) -> npt.NDArray[np.int64]:
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), 64):
        sc = queries[s : s + 64] @ items.T
        part = np.argpartition(sc, sc.shape[1] - k, axis=1)[:, -k:]
        out[s : s + 64] = part
    return out
