"""Micro-batching: concurrent requests share one Redis round trip and one matrix product.

Each request waits at most ``max_wait`` seconds for others; a batch of up to
``max_batch`` is handled by one call in a worker thread (Redis I/O and numpy release
the GIL), so the event loop never blocks on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from prometheus_client import Histogram

from mlrec.models.base import Recommender

__all__ = ["MicroBatcher", "ScoringBatcher", "TopK"]

BATCH_SIZE = Histogram(
    "mlrec_api_scoring_batch_size",
    "Requests scored together in one matrix operation.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
SCORING_SECONDS = Histogram(
    "mlrec_api_scoring_duration_seconds",
    "Time to score one batch.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)

TopK = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]
K = TypeVar("K")
V = TypeVar("V")


@dataclass
class _Job:
    model: Recommender
    items: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float32]
    k: int
    exclude: bool
    allowed: npt.NDArray[np.bool_] | None


def _top_k_row(scores: npt.NDArray[np.float32], k: int) -> TopK:
    k = min(k, scores.shape[0])
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(k)
    order = np.argsort(-scores[part], kind="stable")
    best = part[order].astype(np.int64)
    return best, scores[best]


def _score(jobs: list[_Job]) -> list[TopK]:
    started = time.perf_counter()
    model = jobs[0].model
    # one CSR for the whole batch, built from index arrays (no per-row sparse objects)
    indptr = np.zeros(len(jobs) + 1, dtype=np.int64)
    np.cumsum([len(job.items) for job in jobs], out=indptr[1:])
    histories = sp.csr_matrix(
        (
            np.concatenate([job.weights for job in jobs]),
            np.concatenate([job.items for job in jobs]),
            indptr,
        ),
        shape=(len(jobs), model.n_items),
    )
    if all(job.allowed is None and job.exclude for job in jobs):
        retrieved = model.retrieve(histories, max(job.k for job in jobs))
        if retrieved is not None:  # a large catalogue behind an ANN index
            indices, scores = retrieved
            SCORING_SECONDS.observe(time.perf_counter() - started)
            BATCH_SIZE.observe(len(jobs))
            return [(indices[row, : job.k], scores[row, : job.k]) for row, job in enumerate(jobs)]
    scores = model.score_histories(histories)
    results: list[TopK] = []
    for row, job in enumerate(jobs):
        row_scores = np.array(scores[row], dtype=np.float32, copy=True)
        if job.allowed is not None:
            row_scores[~job.allowed] = -np.inf
        if job.exclude:
            row_scores[job.items] = -np.inf
        results.append(_top_k_row(row_scores, job.k))
    SCORING_SECONDS.observe(time.perf_counter() - started)
    BATCH_SIZE.observe(len(jobs))
    return results


class MicroBatcher(Generic[K, V]):
    """Runs ``fn`` over the items of concurrent callers, a batch at a time, in a thread.

    Each caller's item waits at most ``max_wait`` seconds for company; ``fn`` gets up to
    ``max_batch`` items and returns one result per item. Work that is I/O (a Redis
    round trip) or numpy (a matrix product) runs off the event loop and is amortised.

    Args:
        fn: maps a list of items to the list of their results (same order).
        max_batch: most items per call (1 disables waiting).
        max_wait_seconds: longest the first item of a batch waits for others.
        group: items with different keys never share a call (e.g. two model versions).
    """

    def __init__(
        self,
        fn: Callable[[list[K]], list[V]],
        max_batch: int = 32,
        max_wait_seconds: float = 0.002,
        group: Callable[[K], object] = lambda _item: None,
    ) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_seconds
        self.group = group
        self._queue: asyncio.Queue[tuple[K, asyncio.Future[V]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: K) -> V:
        """The result of ``fn`` for ``item``, computed together with concurrent items."""
        if self.max_batch <= 1:
            return (await asyncio.to_thread(self.fn, [item]))[0]
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run())
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            jobs = [await queue.get()]
            # one timer per batch (not one wait per item): let concurrent callers join
            if self.max_wait > 0 and queue.qsize() < self.max_batch - 1:
                await asyncio.sleep(self.max_wait)
            while len(jobs) < self.max_batch and not queue.empty():
                jobs.append(queue.get_nowait())
            groups: dict[object, list[tuple[K, asyncio.Future[V]]]] = {}
            for job in jobs:
                groups.setdefault(self.group(job[0]), []).append(job)
            for group in groups.values():
                try:
                    results = await asyncio.to_thread(self.fn, [item for item, _ in group])
                except Exception as exc:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    async def close(self) -> None:
        """Stop the worker task."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
            self._queue = None


class ScoringBatcher:
    """Top-k scoring of concurrent requests in one matrix operation per batch."""

    def __init__(self, max_batch: int = 32, max_wait_seconds: float = 0.002) -> None:
        self.max_batch = max_batch
        self._batcher: MicroBatcher[_Job, TopK] = MicroBatcher(
            _score, max_batch, max_wait_seconds, group=lambda job: id(job.model)
        )

    async def top_k(
        self,
        model: Recommender,
        items: npt.NDArray[np.int64],
        weights: npt.NDArray[np.float32],
        k: int,
        exclude: bool = True,
        allowed: npt.NDArray[np.bool_] | None = None,
    ) -> TopK:
        """Top-``k`` item indices and scores for one history (item indices and weights).

        Args:
            items: distinct item indices of the history.
            weights: their interaction weights.
            exclude: drop the history's items from the answer.
            allowed: boolean mask of items that may be recommended.
        """
        return await self._batcher.submit(_Job(model, items, weights, k, exclude, allowed))

    async def close(self) -> None:
        """Stop the worker task."""
        await self._batcher.close()
