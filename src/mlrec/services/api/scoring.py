"""Batch scoring: the top-k of many histories from one matrix operation.

A history is a known user's training row followed by their live items. For a model
whose scores are additive over a 0/1 history (:attr:`Recommender.additive_weights`,
e.g. EASE) the training row's part never changes while the model is served, so
:class:`UserScoreCache` keeps it per user and a request adds only the rows of its
live items: the same scores as scoring the whole history, for a fraction of the work.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from prometheus_client import Counter, Histogram

from mlrec.models.base import Recommender, top_k

__all__ = ["ScoringJob", "TopK", "UserScoreCache", "score_jobs"]

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
CACHE_LOOKUPS = Counter(
    "mlrec_api_user_score_cache_total",
    "Lookups of a known user's training-history scores, by result (hit, miss).",
    ["result"],
)
_HIT, _MISS = CACHE_LOOKUPS.labels("hit"), CACHE_LOOKUPS.labels("miss")

TopK = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]
FloatArray = npt.NDArray[np.float32]


class UserScoreCache:
    """Least-recently-used training-history scores of known users, bounded in bytes.

    Filled on first use; one cache belongs to one served model version, so a
    promoted model starts with an empty one. Safe to use from several threads.

    Args:
        model: a fitted model with :attr:`~Recommender.additive_weights`.
        max_bytes: most memory the cached score rows may take.
    """

    def __init__(self, model: Recommender, max_bytes: int) -> None:
        weights = model.additive_weights
        if weights is None:
            raise ValueError(f"{model.algorithm} scores are not additive over a history")
        self.model = model
        self.weights: FloatArray = weights
        self.capacity = max(0, max_bytes // (4 * model.n_items))
        """How many users' rows fit."""
        self._rows: OrderedDict[int, FloatArray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def fill(self, users: list[int | None], out: FloatArray) -> None:
        """Row ``i`` of ``out`` := the training scores of ``users[i]`` (0 for None)."""
        missing: list[tuple[int, int]] = []  # (row, user)
        with self._lock:
            for row, user in enumerate(users):
                if user is None:
                    out[row] = 0.0
                    continue
                cached = self._rows.get(user)
                if cached is None:
                    missing.append((row, user))
                    continue
                self._rows.move_to_end(user)
                out[row] = cached
        _HIT.inc(len(users) - len(missing) - users.count(None))
        if not missing:
            return
        _MISS.inc(len(missing))
        rows = [row for row, _ in missing]
        computed = self.model.score_histories(self.model.user_items[[u for _, u in missing]])
        out[rows] = computed
        if self.capacity:
            with self._lock:
                for (_, user), scores in zip(missing, computed, strict=True):
                    # a copy: a view would keep the whole batch's matrix alive
                    self._rows[user] = scores.copy()
                while len(self._rows) > self.capacity:
                    self._rows.popitem(last=False)


@dataclass(slots=True)
class ScoringJob:
    """One history to score: item indices (repeats are summed) and weights (None: all
    1), how many items to return, whether to drop the history's items, and an
    allowed-items mask.

    With a ``cache`` (an additive model), ``items`` are only the live items: the
    history is ``user``'s training row (none for a new user) plus them, counted once
    each, and scoring starts from the user's cached training scores.
    """

    model: Recommender
    items: npt.NDArray[np.int64]
    weights: FloatArray | None
    k: int
    exclude: bool
    allowed: npt.NDArray[np.bool_] | None
    user: int | None = None
    cache: UserScoreCache | None = None


def score_jobs(jobs: list[ScoringJob]) -> list[TopK]:
    """Top-k of each job, all scored by one matrix operation (same model for all).

    Each job gets the answer it would get alone, whatever the other jobs ask for.
    """
    started = time.perf_counter()
    model = jobs[0].model
    cache = jobs[0].cache
    k = max(job.k for job in jobs)
    if cache is not None:
        scores, history = _additive_scores(jobs, cache)
        indices, best = _select(jobs, scores, history, k)
        results = [(indices[row, : job.k], best[row, : job.k]) for row, job in enumerate(jobs)]
    else:
        histories = _history_matrix(jobs, model.n_items)
        if model.has_index:
            results = _retrieved(model, jobs, histories)
        else:
            results = _scored(model, jobs, histories, k)
    SCORING_SECONDS.observe(time.perf_counter() - started)
    BATCH_SIZE.observe(len(jobs))
    return results


def _retrieved(model: Recommender, jobs: list[ScoringJob], histories: sp.csr_matrix) -> list[TopK]:
    """Each job's top-k as alone from a model with an index (a large catalogue).

    Alone, a job without a filter that excludes its history is retrieved from the
    index with its own ``k``, and the others are scored; so is each job in a batch:
    an approximate search finds more with a larger ``k``, and scoring finds what the
    index may miss, so a companion's ``k`` or options must not choose for it.
    """
    rows_by_k: dict[int, list[int]] = {}
    rest: list[int] = []
    for row, job in enumerate(jobs):
        if job.allowed is None and job.exclude:
            rows_by_k.setdefault(job.k, []).append(row)
        else:
            rest.append(row)
    results: dict[int, TopK] = {}
    for k, rows in rows_by_k.items():
        retrieved = model.retrieve(histories if len(rows) == len(jobs) else histories[rows], k)
        if retrieved is None:  # the index declined: scored like the rest
            rest.extend(rows)
            continue
        for position, row in enumerate(rows):
            results[row] = (retrieved[0][position], retrieved[1][position])
    if rest:
        subset = [jobs[row] for row in rest]
        rest_histories = histories if len(rest) == len(jobs) else histories[rest]
        scored = _scored(model, subset, rest_histories, max(job.k for job in subset))
        for row, result in zip(rest, scored, strict=True):
            results[row] = result
    return [results[row] for row in range(len(jobs))]


def _scored(
    model: Recommender, jobs: list[ScoringJob], histories: sp.csr_matrix, k: int
) -> list[TopK]:
    """Each job's top-k from the model's scores of every item (``k``: the largest)."""
    scores = np.array(model.score_histories(histories), dtype=np.float32, copy=True)
    history = np.zeros(scores.shape, dtype=bool)
    rows = np.repeat(np.arange(len(jobs)), np.diff(histories.indptr))
    history[rows, histories.indices] = True
    indices, best = _select(jobs, scores, history, k)
    return [(indices[row, : job.k], best[row, : job.k]) for row, job in enumerate(jobs)]


def _history_matrix(jobs: list[ScoringJob], n_items: int) -> sp.csr_matrix:
    """One CSR for the whole batch, built from index arrays (no per-row sparse objects)."""
    indptr = np.zeros(len(jobs) + 1, dtype=np.int64)
    np.cumsum([len(job.items) for job in jobs], out=indptr[1:])
    weights = [
        np.ones(len(job.items), np.float32) if job.weights is None else job.weights for job in jobs
    ]
    histories = sp.csr_matrix(
        (np.concatenate(weights), np.concatenate([job.items for job in jobs]), indptr),
        shape=(len(jobs), n_items),
    )
    # an item both in training and live history becomes one entry with the weights
    # summed (models that score 0/1 histories then count it once)
    histories.sum_duplicates()
    return histories


def _training_items(
    matrix: sp.csr_matrix, row_of: Sequence[int], matrix_rows: Sequence[int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(``row_of[i]``, column) of every non-zero of row ``matrix_rows[i]``, in one go."""
    wanted = np.asarray(matrix_rows, dtype=np.int64)
    starts = matrix.indptr[wanted]
    lengths = matrix.indptr[wanted + 1] - starts
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    columns = matrix.indices[offsets + np.arange(int(lengths.sum()))].astype(np.int64)
    return np.repeat(np.asarray(row_of, dtype=np.int64), lengths), columns


def _additive_scores(
    jobs: list[ScoringJob], cache: UserScoreCache
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Cached training scores plus the weights of each job's live-only items.

    Returns the scores and a mask of every job's history items.
    """
    n_jobs, n_items = len(jobs), cache.model.n_items
    scores = np.empty((n_jobs, n_items), dtype=np.float32)
    users = [job.user for job in jobs]
    cache.fill(users, scores)
    history = np.zeros((n_jobs, n_items), dtype=bool)
    known = [(row, user) for row, user in enumerate(users) if user is not None]
    if known:
        rows_of, users_of = zip(*known, strict=True)
        history[_training_items(cache.model.user_items, rows_of, users_of)] = True
    live_rows = np.repeat(np.arange(n_jobs, dtype=np.int64), [len(job.items) for job in jobs])
    live = np.unique(live_rows * n_items + np.concatenate([job.items for job in jobs]))
    rows, items = np.divmod(live, n_items)  # sorted by row, each item once
    fresh = ~history[rows, items]  # the cached scores already count training items
    history[rows, items] = True
    rows, items = rows[fresh], items[fresh]
    if len(rows):
        contributions = cache.weights[items]
        bounds = np.flatnonzero(np.diff(rows)) + 1
        # a loop over rows: np.add.reduceat along axis 0 measured slower
        for row, block in zip(
            rows[np.r_[0, bounds]].tolist(), np.split(contributions, bounds), strict=True
        ):
            scores[row] += block.sum(axis=0)
    return scores, history


def _select(
    jobs: list[ScoringJob], scores: FloatArray, history: npt.NDArray[np.bool_], k: int
) -> TopK:
    """Top-k after removing each excluding job's history items and disallowed items."""
    excluding = np.array([job.exclude for job in jobs])
    if not excluding.all():
        history &= excluding[:, None]
    scores[history] = -np.inf
    for row, job in enumerate(jobs):
        if job.allowed is not None:
            scores[row, ~job.allowed] = -np.inf
    return top_k(scores, k)
