"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) via the ``implicit`` library."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.core.errors import ModelError, ValidationError
from mlrec.models.ann import AnnIndex
from mlrec.models.base import FloatArray, IntArray, Progress, Recommender

__all__ = ["ALS"]

FOLD_IN_CHUNK = 256
MAX_FACTORS = 4096
"""Largest embedding dimension accepted (a typo like ``factors=10000000`` would
otherwise allocate users x factors floats, or fail deep inside ``implicit``)."""
MAX_SEED = 2**32 - 1
"""Seeds are numpy's: 0 to ``2**32 - 1``."""
MAX_CONFIDENCE = 1e9
"""Largest ``alpha · weight`` trained on with ``binary=false``: ``implicit`` solves in
float32, and confidences much above this overflow it into NaN factors."""


@dataclass(frozen=True)
class ALSParams:
    """Hyper-parameters of ALS.

    Attributes:
        factors: embedding dimension.
        regularization: L2 penalty on the factors.
        alpha: confidence scale; an interaction of weight ``r`` has confidence ``alpha·r``
            (``implicit``'s convention).
        iterations: alternating sweeps.
        seed: random initialisation seed.
        binary: train on 0/1 interactions instead of the given weights.
        num_threads: worker threads of ``implicit`` (0 = all cores).
        ann_min_items: from this many items on, recommendations are retrieved from an
            approximate nearest-neighbour index over the item factors (hnswlib, recall@100
            ≈ 0.95 at 1M items) instead of scoring the whole catalogue; 0 = never.
    """

    factors: int = 16
    regularization: float = 10.0
    alpha: float = 5.0
    iterations: int = 15
    seed: int = 42
    binary: bool = True
    num_threads: int = 0
    ann_min_items: int = 100_000

    def __post_init__(self) -> None:
        if not 1 <= self.factors <= MAX_FACTORS:
            raise ValidationError(
                f"als: factors must be between 1 and {MAX_FACTORS}, got {self.factors}"
            )
        if self.iterations < 1:
            raise ValidationError(f"als: iterations must be >= 1, got {self.iterations}")
        # written so that NaN fails too (every comparison with NaN is false)
        if not (math.isfinite(self.regularization) and self.regularization >= 0):
            raise ValidationError(
                f"als: regularization must be a finite number >= 0, got {self.regularization}"
            )
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValidationError(f"als: alpha must be a finite number > 0, got {self.alpha}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValidationError(f"als: seed must be between 0 and 2**32 - 1, got {self.seed}")
        if self.num_threads < 0:
            raise ValidationError(f"als: num_threads must be >= 0, got {self.num_threads}")


def _import_implicit() -> Any:
    # implicit's BLAS check reads this; one BLAS thread per ALS worker is what it wants
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.recommender_base import ModelFitError
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise ModelError(
            "als needs the 'implicit' and 'threadpoolctl' packages: pip install implicit"
        ) from exc
    return AlternatingLeastSquares, threadpool_limits, ModelFitError


class ALS(Recommender):
    """Matrix factorisation ``score(u, i) = x_u · y_i`` for implicit feedback.

    Known users are scored with their learned factors. Users given only by a
    history (:meth:`score_histories`) are folded in by solving the same
    least-squares step ALS uses for users, with the item factors fixed, so live
    histories are served without refitting.

    :meth:`embeddings` exposes the item factors for approximate nearest-neighbour
    retrieval (inner-product search with the vectors of :meth:`user_embeddings`).
    """

    algorithm = "als"
    Params = ALSParams
    params: ALSParams

    def _prepare(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        x = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        if self.params.binary:
            x.data[:] = 1.0
        x.eliminate_zeros()
        return x

    def _check_confidences(self, x: sp.csr_matrix) -> None:
        """Refuse weights whose confidence ``alpha · weight`` ``implicit`` cannot train on."""
        if not x.nnz:
            return
        largest = float(np.abs(x.data).max())
        if not math.isfinite(largest):
            raise ValidationError("als: the training weights include a non-finite value")
        if self.params.alpha * largest > MAX_CONFIDENCE:
            raise ValidationError(
                f"als: with binary=false, alpha x weight must be at most {MAX_CONFIDENCE:g}, "
                f"but the largest weight is {largest:g} (x alpha {self.params.alpha:g}); "
                "scale the weights down (e.g. log1p of counts), lower alpha, or use binary=true"
            )

    def _fit(self, matrix: sp.csr_matrix, progress: Progress) -> None:
        alternating_least_squares, threadpool_limits, model_fit_error = _import_implicit()
        p = self.params
        x = self._prepare(matrix)
        self._check_confidences(x)
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                model = alternating_least_squares(
                    factors=p.factors,
                    regularization=p.regularization,
                    alpha=p.alpha,
                    iterations=p.iterations,
                    random_state=p.seed,
                    num_threads=p.num_threads,
                )
                model.fit(
                    x,
                    show_progress=False,
                    callback=lambda iteration, _elapsed, _loss: progress(
                        (iteration + 1) / p.iterations
                    ),
                )
        except (model_fit_error, ValueError, ArithmeticError, MemoryError) as exc:
            # ModelFitError: implicit found NaN factors (a diverged fit)
            raise ModelError(
                f"als: training failed ({type(exc).__name__}: {exc}); "
                "check the weights and the regularization/alpha parameters"
            ) from exc
        self.user_factors: FloatArray = np.ascontiguousarray(model.user_factors, np.float32)
        self.item_factors: FloatArray = np.ascontiguousarray(model.item_factors, np.float32)
        if not (np.isfinite(self.user_factors).all() and np.isfinite(self.item_factors).all()):
            raise ModelError(
                "als: training diverged (non-finite factors); "
                "check the weights and the regularization/alpha parameters"
            )
        self.ann: AnnIndex | None = None
        if 0 < p.ann_min_items <= self.item_factors.shape[0]:
            self.ann = AnnIndex.build(self.item_factors, "ip", progress=progress)
        progress(1.0)

    @property
    def has_index(self) -> bool:
        return self.ann is not None

    def retrieve(self, histories: sp.csr_matrix, k: int) -> tuple[IntArray, FloatArray] | None:
        """Top-``k`` unseen items per history row from the ANN index (None: no index)."""
        if self.ann is None:
            return None
        return self.ann.search(self.history_embeddings(histories), k, exclude=histories)

    def recommend_batch(
        self, user_indices: IntArray, k: int = 10, exclude_seen: bool = True, chunk: int = 512
    ) -> tuple[IntArray, FloatArray]:
        if self.ann is None:
            return super().recommend_batch(user_indices, k, exclude_seen, chunk)
        exclude = self.user_items[user_indices] if exclude_seen else None
        return self.ann.search(self.user_factors[user_indices], k, exclude=exclude)

    # -- embeddings ----------------------------------------------------------------

    def embeddings(self) -> FloatArray:
        """Item factors ``(n_items, factors)``; ``score = user_vector @ embeddings().T``."""
        self._require_fitted()
        return self.item_factors

    def user_embeddings(self, user_indices: IntArray) -> FloatArray:
        """Learned factors of training users by dense index."""
        self._require_fitted()
        return self.user_factors[user_indices]

    def history_embeddings(self, histories: sp.csr_matrix) -> FloatArray:
        """Folded-in user factors for history rows (one least-squares solve per row).

        Solves ``(YᵀY + Yᵀ(C - I)Y + λI) x = Yᵀ C p`` with ``C = alpha·r`` on the
        history's items, the same step ``implicit`` uses for users.
        """
        y = self.item_factors.astype(np.float64)
        x = self._prepare(histories)
        n, f = x.shape[0], y.shape[1]
        gram = y.T @ y + self.params.regularization * np.eye(f)
        out = np.zeros((n, f), np.float32)
        for start in range(0, n, FOLD_IN_CHUNK):
            stop = min(n, start + FOLD_IN_CHUNK)
            a = np.broadcast_to(gram, (stop - start, f, f)).copy()
            b = np.zeros((stop - start, f))
            for row in range(start, stop):
                lo, hi = x.indptr[row], x.indptr[row + 1]
                if lo == hi:
                    continue
                items = x.indices[lo:hi]
                confidence = self.params.alpha * x.data[lo:hi].astype(np.float64)
                yu = y[items]
                a[row - start] += (yu * (confidence - 1.0)[:, None]).T @ yu
                b[row - start] = confidence @ yu
            out[start:stop] = np.linalg.solve(a, b[:, :, None])[:, :, 0]
        return out

    # -- scoring -------------------------------------------------------------------

    def score_users(self, user_indices: IntArray) -> FloatArray:
        return np.asarray(self.user_factors[user_indices] @ self.item_factors.T, np.float32)

    def score_histories(self, histories: sp.csr_matrix) -> FloatArray:
        return np.asarray(self.history_embeddings(histories) @ self.item_factors.T, np.float32)

    def item_similarities(self, item_index: int) -> FloatArray:
        norms = np.linalg.norm(self.item_factors, axis=1)
        norms[norms == 0] = 1.0
        cosine = (self.item_factors @ self.item_factors[item_index]) / (norms * norms[item_index])
        return np.asarray(cosine, np.float32)

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        state = {"user_factors": self.user_factors, "item_factors": self.item_factors}
        if self.ann is not None:
            state.update(self.ann.to_arrays())
        return state

    def _set_state(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        self.user_factors = arrays["user_factors"].astype(np.float32)
        self.item_factors = arrays["item_factors"].astype(np.float32)
        self.ann = AnnIndex.from_arrays(arrays) if "ann.index" in arrays else None
