"""AnnIndex and exact_search on a small clustered catalogue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp

from mlrec.core.errors import ModelError, ValidationError
from mlrec.models.ann import AnnIndex, exact_search
from mlrec.models.artifacts import Artifact, read_artifact, write_artifact

N_ITEMS, DIM, K = 5_000, 32, 100


def catalogue(
    n: int = N_ITEMS, m: int = 100, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((40, DIM))
    items = centers[rng.integers(0, 40, n)] + 0.7 * rng.standard_normal((n, DIM))
    items *= rng.lognormal(0.0, 0.3, n)[:, None] / np.linalg.norm(items, axis=1, keepdims=True)
    queries = centers[rng.integers(0, 40, m)] + 0.7 * rng.standard_normal((m, DIM))
    return items.astype(np.float32), queries.astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    return catalogue()


@pytest.fixture(scope="module")
def index(data: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]) -> AnnIndex:
    return AnnIndex.build(data[0], "ip", threads=2)


def recall(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_search_recall_at_100_is_at_least_095_against_exact(data, metric) -> None:
    items, queries = data
    ann = AnnIndex.build(items, metric, threads=2)
    found, scores = ann.search(queries, K)
    truth, truth_scores = exact_search(items, queries, K, metric=metric)
    assert found.shape == scores.shape == (len(queries), K)
    assert found.dtype == np.int64 and scores.dtype == np.float32
    assert recall(found, truth) >= 0.95
    # Scores are the metric's similarities, best first.
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    np.testing.assert_allclose(scores[:, 0], truth_scores[:, 0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_exact_search_matches_naive_full_sort(data, metric) -> None:
    items, queries = data
    found, scores = exact_search(items, queries, 10, metric=metric, chunk_elements=7 * N_ITEMS)
    if metric == "cosine":
        items = items / np.linalg.norm(items, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    full = queries.astype(np.float64) @ items.T.astype(np.float64)
    naive = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(found, naive)
    np.testing.assert_allclose(scores, np.take_along_axis(full, naive, axis=1), rtol=1e-5)


def test_search_excludes_items_given_as_sets_or_csr(data, index) -> None:
    items, queries = data
    q = queries[:3]
    top, _ = exact_search(items, q, 50)
    sets = [set(top[0, :30].tolist()), set(), {int(top[2, 0])}]
    rows, cols = zip(*[(r, c) for r, s in enumerate(sets) for c in s], strict=True)
    csr = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(3, N_ITEMS))
    for exclude in (sets, csr):
        found, scores = index.search(q, 20, exclude=exclude)
        assert found.shape == (3, 20) and np.all(found >= 0) and np.all(np.isfinite(scores))
        for row, excluded in enumerate(sets):
            assert not excluded & set(found[row].tolist())
        exact, _ = exact_search(items, q, 20, exclude=exclude)
        np.testing.assert_array_equal(exact[1], found[1])  # best of row 1 is easy
        assert recall(found, exact) >= 0.9
        assert not set(exact[0].tolist()) & sets[0]


def test_search_pads_when_exclusions_leave_fewer_than_k() -> None:
    items, queries = catalogue(n=30, m=2)
    ann = AnnIndex.build(items)
    exclude = [set(range(25)), set()]
    for found, scores in (
        ann.search(queries, 10, exclude),
        exact_search(items, queries, 10, "ip", exclude),
    ):
        assert found.shape == (2, 10)
        assert set(found[0, :5].tolist()) == set(range(25, 30))
        assert np.all(found[0, 5:] == -1) and np.all(np.isneginf(scores[0, 5:]))
        assert np.all(found[1] >= 0)


def test_to_arrays_round_trip_returns_identical_results(data, index, tmp_path: Path) -> None:
    _, queries = data
    arrays = index.to_arrays("ann")
    assert {a.dtype for a in arrays.values()} <= {np.dtype(np.uint8), np.dtype(np.int64)}
    write_artifact(tmp_path, Artifact(manifest={"algorithm": "ann"}, arrays=arrays))
    restored = AnnIndex.from_arrays(read_artifact(tmp_path).arrays, "ann")
    assert len(restored) == len(index) and restored.params == index.params
    for a, b in zip(index.search(queries, K), restored.search(queries, K), strict=True):
        np.testing.assert_array_equal(a, b)


def test_from_arrays_rejects_missing_prefix(index) -> None:
    with pytest.raises(ModelError):
        AnnIndex.from_arrays(index.to_arrays("ann"), "other")


def test_search_caps_k_at_catalogue_size() -> None:
    items, queries = catalogue(n=7, m=3)
    ann = AnnIndex.build(items, "cosine")
    found, scores = ann.search(queries, 100)
    truth, truth_scores = exact_search(items, queries, 100, "cosine")
    assert found.shape == truth.shape == (3, 7)
    np.testing.assert_array_equal(found, truth)
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-5, atol=1e-6)


def test_empty_index_returns_empty_results_and_round_trips() -> None:
    ann = AnnIndex.build(np.empty((0, DIM), np.float32))
    found, scores = ann.search(np.ones((2, DIM), np.float32), 5)
    assert found.shape == scores.shape == (2, 0)
    restored = AnnIndex.from_arrays(ann.to_arrays())
    assert len(restored) == 0 and restored.search(np.ones(DIM), 3)[0].shape == (1, 0)


def test_build_reports_progress_up_to_one(data) -> None:
    seen: list[float] = []
    AnnIndex.build(data[0][:2_000], progress=seen.append, chunk_size=500)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


def test_invalid_arguments_raise_validation_error(data, index) -> None:
    with pytest.raises(ValidationError):
        index.search(data[1], 0)
    with pytest.raises(ValidationError):
        index.search(np.ones((1, DIM + 1), np.float32), 5)
    with pytest.raises(ValidationError):
        AnnIndex.build(data[0][:10], "l2")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        exact_search(data[0], np.full((1, DIM), np.nan, np.float32), 5)
