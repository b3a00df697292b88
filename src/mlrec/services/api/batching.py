"""Micro-batching: concurrent requests share one Redis round trip and one matrix product.

Each request waits at most ``max_wait`` seconds for others; a batch of up to
``max_batch`` is handled by one call in a worker thread (Redis I/O and numpy release
the GIL), so the event loop never blocks on either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from mlrec.services.api.scoring import ScoringJob, TopK, score_jobs

__all__ = ["MicroBatcher", "ScoringBatcher"]

K = TypeVar("K")
V = TypeVar("V")


class MicroBatcher(Generic[K, V]):
    """Runs ``fn`` over the items of concurrent callers, a batch at a time, in a thread.

    ``fn`` gets up to ``max_batch`` items and returns one result per item. Work that is
    I/O (a Redis round trip) or numpy (a matrix product) runs off the event loop and
    is amortised over the batch.

    Up to ``concurrency`` batches run at once, so the event loop parses and answers
    requests while a batch is scored (with one batch in flight, loop and thread
    would take turns and each sit idle half the time). A batch is sent at once when
    nothing else is in flight (lowest latency when quiet); otherwise it waits up to
    ``max_wait`` seconds for company, as batches form anyway while the others run.

    Args:
        fn: maps a list of items to the list of their results (same order).
        max_batch: most items per call (1 disables batching).
        max_wait_seconds: longest the first item of a batch waits for others.
        group: items with different keys never share a call (e.g. two model versions).
        concurrency: batches in flight at once.
    """

    def __init__(
        self,
        fn: Callable[[list[K]], list[V]],
        max_batch: int = 32,
        max_wait_seconds: float = 0.002,
        group: Callable[[K], object] = lambda _item: None,
        concurrency: int = 2,
    ) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_seconds
        self.group = group
        self.concurrency = concurrency
        # A deque and an event rather than an asyncio.Queue: the hot path appends one
        # item per request and the workers drain whole batches.
        self._pending: deque[tuple[K, asyncio.Future[V]]] = deque()
        self._arrived: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight = 0

    async def submit(self, item: K) -> V:
        """The result of ``fn`` for ``item``, computed together with concurrent items."""
        if self.max_batch <= 1:
            return (await asyncio.to_thread(self.fn, [item]))[0]
        loop = asyncio.get_running_loop()
        if self._arrived is None:
            self._arrived = asyncio.Event()
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="mlrec-batch")
            self._workers = [loop.create_task(self._run()) for _ in range(self.concurrency)]
        future: asyncio.Future[V] = loop.create_future()
        self._pending.append((item, future))
        self._arrived.set()
        return await future

    async def _run(self) -> None:
        assert self._arrived is not None
        pending, arrived = self._pending, self._arrived
        while True:
            while not pending:
                arrived.clear()
                await arrived.wait()
            if self._in_flight and self.max_wait > 0 and len(pending) < self.max_batch:
                await asyncio.sleep(self.max_wait)
            jobs = [pending.popleft() for _ in range(min(self.max_batch, len(pending)))]
            if not jobs:
                continue
            groups: dict[object, list[tuple[K, asyncio.Future[V]]]] = {}
            for job in jobs:
                groups.setdefault(self.group(job[0]), []).append(job)
            self._in_flight += 1
            try:
                for group in groups.values():
                    await self._call(group)
            finally:
                self._in_flight -= 1

    async def _call(self, group: list[tuple[K, asyncio.Future[V]]]) -> None:
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(
                self._executor, self.fn, [item for item, _ in group]
            )
        except Exception as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        """Stop the worker tasks."""
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        self._arrived = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


class ScoringBatcher:
    """Top-k scoring of concurrent requests in one matrix operation per batch."""

    def __init__(self, max_batch: int = 32, max_wait_seconds: float = 0.002) -> None:
        self.max_batch = max_batch
        self.max_wait = max_wait_seconds
        self._batcher: MicroBatcher[ScoringJob, TopK] = MicroBatcher(
            score_jobs, max_batch, max_wait_seconds, group=lambda job: id(job.model)
        )

    async def score(self, job: ScoringJob) -> TopK:
        """Top-``job.k`` item indices and scores of one history, batched with others."""
        return await self._batcher.submit(job)

    async def close(self) -> None:
        """Stop the worker task."""
        await self._batcher.close()
