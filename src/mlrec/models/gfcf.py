"""GF-CF (Shen et al., CIKM 2021, "How Powerful is Graph Convolution for Recommendation?").

A training-free graph filter. With ``R̃ = D_u^{-1/2} R D_i^{-1/2}`` (``R`` the 0/1
users x items matrix, ``D`` the degrees), a history row ``r`` is scored by

``s = r·R̃ᵀR̃ + α · r·D_i^{-1/2} V Vᵀ D_i^{1/2}``

the linear filter plus the ideal low-pass filter built from the top-``k`` right
singular vectors ``V`` of ``R̃``. Both terms are functions of the history alone, so
bare histories are scored exactly like training users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.core.errors import ValidationError
from mlrec.models.artifacts import pack_csr, unpack_csr
from mlrec.models.base import FloatArray, Progress, Recommender

__all__ = ["GFCF"]

DENSE_ITEMS = 5_000
"""Up to this many items the filter is materialised as a dense item-item matrix in memory."""


@dataclass(frozen=True)
class GFCFParams:
    """Hyper-parameters of GF-CF.

    The defaults were chosen on validation splits carved from the ML-100K training
    split (``bench/quality.py``): ``k`` between 24 and 48 did best there, well below
    the paper's 256 for its much sparser data sets.

    Attributes:
        factors: ``k``, singular vectors of ``R̃`` in the ideal low-pass filter.
        alpha: weight of the ideal low-pass filter (0 = linear filter only).
    """

    factors: int = 32
    alpha: float = 0.3

    def __post_init__(self) -> None:
        if self.factors < 1:
            raise ValidationError(f"gfcf: factors must be >= 1, got {self.factors}")
        if self.alpha < 0:
            raise ValidationError(f"gfcf: alpha must be >= 0, got {self.alpha}")


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    x = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    return x


class GFCF(Recommender):
    """Linear plus ideal low-pass graph filter over the normalised interaction graph.

    Kept factorised (``R̃`` sparse and ``k x n_items`` bases), so memory is linear in
    the catalogue; small catalogues also get the dense item-item filter in memory,
    which makes scoring one sparse-dense product.
    """

    algorithm = "gfcf"
    Params = GFCFParams
    params: GFCFParams

    def _fit(self, matrix: sp.csr_matrix, progress: Progress) -> None:
        x = sp.csr_matrix(_binary(matrix), dtype=np.float64)
        user_degree = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
        item_degree = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
        user_scale = np.zeros_like(user_degree)
        item_scale = np.zeros_like(item_degree)
        user_scale[user_degree > 0] = user_degree[user_degree > 0] ** -0.5
        item_scale[item_degree > 0] = item_degree[item_degree > 0] ** -0.5
        normalized = sp.csr_matrix(sp.diags(user_scale) @ x @ sp.diags(item_scale))
        progress(0.2)
        n_items = x.shape[1]
        k = min(self.params.factors, min(x.shape) - 1)
        left = np.zeros((0, n_items), np.float32)
        right = np.zeros((0, n_items), np.float32)
        if self.params.alpha > 0 and k >= 1:
            from scipy.sparse.linalg import svds  # only fitting needs it

            _, _, vt = svds(sp.csc_matrix(normalized), k=k, random_state=0)
            # D_i^{-1/2} V Vᵀ D_i^{1/2} = leftᵀ right; alpha is folded into left
            left = np.asarray(self.params.alpha * vt * item_scale[None, :], np.float32)
            inverse = np.zeros_like(item_scale)
            inverse[item_scale > 0] = 1.0 / item_scale[item_scale > 0]
            right = np.asarray(vt * inverse[None, :], np.float32)
        progress(0.9)
        self._set_filter(sp.csr_matrix(normalized, dtype=np.float32), left, right)
        progress(1.0)

    def _set_filter(self, normalized: sp.csr_matrix, left: FloatArray, right: FloatArray) -> None:
        self.normalized = normalized
        self.left = np.ascontiguousarray(left, dtype=np.float32)
        self.right = np.ascontiguousarray(right, dtype=np.float32)
        self.dense: FloatArray | None = None
        if normalized.shape[1] <= DENSE_ITEMS:
            gram = (normalized.T @ normalized).toarray() + self.left.T @ self.right
            self.dense = np.ascontiguousarray(gram, dtype=np.float32)

    def score_histories(self, histories: sp.csr_matrix) -> FloatArray:
        r = _binary(histories)
        if self.dense is not None:
            return np.asarray(r @ self.dense, dtype=np.float32)
        linear = (r @ self.normalized.T) @ self.normalized
        scores = np.asarray(linear.toarray(), dtype=np.float32)
        if self.left.shape[0]:
            scores += np.asarray(r @ self.left.T, np.float32) @ self.right
        return scores

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {**pack_csr("normalized", self.normalized), "left": self.left, "right": self.right}

    def _set_state(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        self._set_filter(unpack_csr("normalized", arrays), arrays["left"], arrays["right"])
