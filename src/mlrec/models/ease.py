"""EASE (Steck, WWW 2019): a closed-form item-item linear autoencoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.sparse as sp

from mlrec.core.errors import ModelError
from mlrec.models.base import FloatArray, Progress, Recommender

__all__ = ["EASE"]

MAX_DENSE_ITEMS = 40_000


@dataclass(frozen=True)
class EASEParams:
    """Hyper-parameters of EASE.

    Attributes:
        l2: ridge penalty on the item-item weights (larger = smoother).
        binary: train on 0/1 interactions instead of the given weights.
    """

    l2: float = 500.0
    binary: bool = True


class EASE(Recommender):
    """Item-item weights ``B`` with zero diagonal solving ``min ||X - XB||² + l2||B||²``.

    Dense in the number of items: fine up to tens of thousands of items; larger
    catalogues should use an embedding model with ANN retrieval.
    """

    algorithm = "ease"
    Params = EASEParams
    params: EASEParams

    def _fit(self, matrix: sp.csr_matrix, progress: Progress) -> None:
        n_items = matrix.shape[1]
        if n_items > MAX_DENSE_ITEMS:
            raise ModelError(
                f"ease: {n_items} items need a dense {n_items}² matrix; "
                f"use it up to {MAX_DENSE_ITEMS} items or pick 'als' with ANN retrieval"
            )
        x = matrix.copy()
        if self.params.binary:
            x.data[:] = 1.0
        gram = (x.T @ x).toarray().astype(np.float64)
        progress(0.3)
        gram[np.diag_indices(n_items)] += self.params.l2
        precision = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        progress(0.9)
        weights = precision / (-np.diag(precision))
        weights[np.diag_indices(n_items)] = 0.0
        # C order: scipy multiplies a sparse history by a dense matrix row-wise, and an
        # F-ordered matrix would be copied (11 MB for ML-100K) on every request.
        self.weights: FloatArray = np.ascontiguousarray(weights, dtype=np.float32)
        progress(1.0)

    def score_histories(self, histories: sp.csr_matrix) -> FloatArray:
        x = histories.copy()
        if self.params.binary:
            x.data[:] = 1.0
        return np.asarray(x @ self.weights, dtype=np.float32)

    def item_similarities(self, item_index: int) -> FloatArray:
        return np.asarray(self.weights[item_index], dtype=np.float32)

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {"weights": self.weights}

    def _set_state(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        self.weights = np.ascontiguousarray(arrays["weights"], dtype=np.float32)
