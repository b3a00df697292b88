"""The recommendation hot path: batching, batch scoring, direct JSON, HTTP edge (CORS)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import orjson
import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient

from mlrec.data import make_demo
from mlrec.models import create_model
from mlrec.models.base import top_k
from mlrec.models.ease import EASE
from mlrec.models.registry import ModelVersion
from mlrec.services.api.answers import ItemScore, Recommendations
from mlrec.services.api.batching import MicroBatcher
from mlrec.services.api.model_server import ServedModel
from mlrec.services.api.schemas import RecommendationsPublic
from mlrec.services.api.scoring import ScoringJob, UserScoreCache, score_jobs
from mlrec.services.api.service import new_request_id


def _served() -> ServedModel:
    model = create_model("ease").fit(make_demo(n_users=60, n_items=40, seed=3))
    version = ModelVersion(
        name="default",
        version=4,
        algorithm="ease",
        artifact_sha256="0" * 64,
        artifact_path="",
        params={},
        dataset="demo",
        metrics={},
        stage="production",
        created_at=datetime.now(UTC),
    )
    return ServedModel.build(model, version)


def _served_with_cache() -> ServedModel:
    served = _served()
    return ServedModel.build(served.model, served.version, 1 << 20)


def test_direct_json_matches_the_documented_response_model() -> None:
    answer = Recommendations(
        user_id="u1",
        items=[ItemScore("i1", 0.75, 1, "Film (1995)"), ItemScore("i2", -1.5, 2, None)],
        served=_served(),
        source="personal",
        request_id="abc",
        degraded_reasons=["feature store unavailable: boom"],
    )
    direct = orjson.loads(answer.json())
    assert direct == answer.public().model_dump(mode="json")
    assert RecommendationsPublic.model_validate(direct).degraded is True
    assert direct["model"] == {"name": "default", "version": 4, "algorithm": "ease"}


def test_score_jobs_sums_repeated_items_and_applies_each_jobs_options() -> None:
    model = _served().model
    history = np.array([0, 3, 5], dtype=np.int64)
    ones = np.ones(3, dtype=np.float32)
    twice = np.concatenate([history, history[:1]])  # item 0 in training and live history
    allowed = np.zeros(model.n_items, dtype=bool)
    allowed[[1, 2, 7, 9]] = True
    jobs = [
        ScoringJob(model, history, ones, 5, True, None),
        ScoringJob(model, twice, np.ones(4, dtype=np.float32), 3, True, None),
        ScoringJob(model, history, ones, 4, False, None),
        ScoringJob(model, history, ones, 10, True, allowed),
    ]
    results = score_jobs(jobs)

    single = [score_jobs([job])[0] for job in jobs]
    for (indices, scores), (alone_indices, alone_scores) in zip(results, single, strict=True):
        assert indices.tolist() == alone_indices.tolist()  # batching changes nothing
        np.testing.assert_allclose(scores, alone_scores, rtol=1e-5)
    assert len(results[0][0]) == 5 and not set(results[0][0].tolist()) & {0, 3, 5}
    assert len(results[1][0]) == 3
    assert not set(results[1][0].tolist()) & {0, 3, 5}  # a repeated item is still excluded
    assert len(results[2][0]) == 4
    # only four items are allowed: the rest of the top-10 are -inf placeholders
    finite = results[3][0][np.isfinite(results[3][1])]
    assert set(finite.tolist()) <= {1, 2, 7, 9} and len(finite) == 4


class _IndexedEase(EASE):
    """EASE behind a stand-in for an approximate index (ALS's hnswlib on a large
    catalogue): like a graph search, a search for more items finds better ones (here
    it ranks only the first ``4 k`` items), so what it retrieves depends on ``k``."""

    @property
    def has_index(self) -> bool:
        return True

    def retrieve(
        self, histories: sp.csr_matrix, k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        scores = self.score_histories(histories)
        scores[:, 4 * k :] = -np.inf
        return top_k(scores, k, exclude=histories)


def test_a_model_with_an_index_answers_each_job_as_alone_whatever_its_companions() -> None:
    model = _IndexedEase().fit(make_demo(n_users=60, n_items=40, seed=3))
    history = np.array([0, 3, 5], dtype=np.int64)
    ones = np.ones(3, dtype=np.float32)
    everything = np.ones(model.n_items, dtype=bool)
    retrieved = ScoringJob(model, history, ones, 3, True, None)  # alone: from the index
    companions = [
        ScoringJob(model, history, ones, 3, False, None),  # seen items may come back
        ScoringJob(model, history, ones, 3, True, everything),  # a filter
        ScoringJob(model, history, ones, 8, True, None),  # a longer search
    ]
    alone = score_jobs([retrieved])[0][0].tolist()
    scored = score_jobs([ScoringJob(model, history, ones, 3, True, everything)])[0][0].tolist()
    assert alone != scored  # the index misses some: the test can tell them apart
    for companion in companions:
        together = score_jobs([retrieved, companion, retrieved])
        assert together[0][0].tolist() == together[2][0].tolist() == alone
        assert together[1][0].tolist() == score_jobs([companion])[0][0].tolist()


def _cached_and_plain_jobs(
    served: ServedModel, user: int | None, live: list[int], k: int, exclude: bool
) -> tuple[ScoringJob, ScoringJob]:
    model = served.model
    training = np.empty(0, np.int64)
    if user is not None:
        start, end = model.user_items.indptr[user], model.user_items.indptr[user + 1]
        training = model.user_items.indices[start:end].astype(np.int64)
    live_items = np.array(live, dtype=np.int64)
    history = np.concatenate([training, live_items])
    cached = ScoringJob(model, live_items, None, k, exclude, None, user, served.user_scores)
    return cached, ScoringJob(model, history, None, k, exclude, None, user)


def test_cached_user_scores_give_the_same_answers_as_scoring_the_whole_history() -> None:
    served = _served_with_cache()
    assert served.user_scores is not None
    model = served.model
    first = int(model.user_items.indices[model.user_items.indptr[0]])  # in user 0's row
    cases = [
        (0, [], 5, True),  # no live items
        (0, [first, 7, 7, 11], 8, True),  # a training item again, a live item twice
        (1, [2, 3], 6, False),  # seen items may come back
        (None, [4, 9], 5, True),  # a new user known only by live items
        (2, [1], 40, True),  # k larger than what is left
    ]
    jobs = [_cached_and_plain_jobs(served, *case) for case in cases]
    cached = score_jobs([c for c, _ in jobs])
    plain = score_jobs([p for _, p in jobs])
    for (indices, scores), (plain_indices, plain_scores) in zip(cached, plain, strict=True):
        np.testing.assert_allclose(scores, plain_scores, rtol=1e-5, atol=1e-6)
        finite = np.isfinite(plain_scores)
        assert set(indices[finite].tolist()) == set(plain_indices[finite].tolist())
    assert first not in cached[1][0].tolist() and 7 not in cached[1][0].tolist()
    assert len(served.user_scores) == 3  # users 0, 1 and 2, each scored once


def test_user_score_cache_keeps_the_most_recently_used_users_within_its_budget() -> None:
    model = _served().model
    cache = UserScoreCache(model, max_bytes=2 * 4 * model.n_items)  # room for two users

    def scores(user: int) -> np.ndarray:
        out = np.empty((1, model.n_items), dtype=np.float32)
        cache.fill([user], out)
        return out[0]

    first = scores(0)
    scores(1)
    scores(0)  # user 0 is now the most recent
    scores(2)  # evicts user 1
    assert len(cache) == 2
    np.testing.assert_array_equal(scores(0), first)
    expected = model.score_histories(model.user_items[1])[0]
    np.testing.assert_allclose(scores(1), expected)  # recomputed after eviction


def test_only_additive_models_get_a_user_score_cache() -> None:
    data = make_demo(n_users=40, n_items=30, seed=5)
    version = _served().version
    additive = create_model("ease").fit(data)
    assert ServedModel.build(additive, version, 1 << 20).user_scores is not None
    ranked = create_model("ease", binary=False).fit(data)  # per-row ranks: not additive
    assert ranked.additive_weights is None
    assert ServedModel.build(ranked, version, 1 << 20).user_scores is None
    assert ServedModel.build(additive, version, 0).user_scores is None


def test_micro_batcher_groups_concurrent_callers_into_one_call() -> None:
    calls: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        calls.append(items)
        return [2 * i for i in items]

    async def main() -> list[int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(double, max_batch=8, concurrency=1)
        try:
            return list(await asyncio.gather(*(batcher.submit(i) for i in range(20))))
        finally:
            await batcher.close()

    assert asyncio.run(main()) == [2 * i for i in range(20)]
    assert max(len(c) for c in calls) == 8
    assert sum(len(c) for c in calls) == 20
    assert len(calls) < 20


def test_micro_batcher_runs_batches_concurrently_and_reports_errors() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def slow(items: list[int]) -> list[int]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        if -1 in items:
            raise ValueError("bad item")
        return items

    async def main() -> tuple[list[int], BaseException | None]:
        batcher: MicroBatcher[int, int] = MicroBatcher(
            slow, max_batch=2, max_wait_seconds=0.0, concurrency=2
        )
        try:
            ok = await asyncio.gather(*(batcher.submit(i) for i in range(6)))
            with pytest.raises(ValueError, match="bad item"):
                await batcher.submit(-1)
            return list(ok), None
        finally:
            await batcher.close()

    ok, _ = asyncio.run(main())
    assert ok == list(range(6))
    assert most == 2


def test_requests_without_origin_skip_cors_but_vary_on_origin(client: TestClient) -> None:
    plain = client.get("/v1/items/popular")
    assert plain.status_code == 200
    assert "Origin" in plain.headers["vary"]
    assert "access-control-allow-origin" not in plain.headers


def test_cross_origin_requests_get_cors_headers(client: TestClient) -> None:
    simple = client.get("/v1/items/popular", headers={"Origin": "https://ui.example"})
    assert simple.headers["access-control-allow-origin"] == "*"
    preflight = client.options(
        "/v1/events",
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert "POST" in preflight.headers["access-control-allow-methods"]


def test_request_ids_are_unique_and_a_forked_child_draws_its_own_prefix() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) == 32 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32 and child[:16] != ids[0][:16]


def test_cached_score_rows_hold_only_their_own_memory() -> None:
    # a row kept as a view of its batch's matrix would keep the whole batch alive,
    # so the byte budget would not bound memory
    model = _served().model
    cache = UserScoreCache(model, max_bytes=64 * 4 * model.n_items)
    out = np.empty((3, model.n_items), dtype=np.float32)
    cache.fill([0, 1, 2], out)
    rows = list(cache._rows.values())
    assert len(rows) == 3
    assert all(row.base is None and row.nbytes == 4 * model.n_items for row in rows)


def test_filter_masks_belong_to_the_model_they_were_built_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlrec.services.api.batching import ScoringBatcher
    from mlrec.services.api.service import RecommendationService

    small = _served()
    large_model = create_model("ease").fit(make_demo(n_users=60, n_items=70, seed=3))
    large = ServedModel.build(large_model, small.version)
    service = RecommendationService(None, None, ScoringBatcher(4, 0.001), 10)  # type: ignore[arg-type]
    item_filter = ("items", frozenset({small.model.items.id(0)}))

    assert len(service._allowed(small, item_filter)) == small.model.n_items
    # a swapped-in model whose object happens to get the freed model's id()
    monkeypatch.setattr("builtins.id", lambda _: 1)
    assert len(service._allowed(large, item_filter)) == large.model.n_items
    assert len(service._allowed(small, item_filter)) == small.model.n_items
