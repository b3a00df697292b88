"""ItemKNN: item-item cosine similarity with shrinkage, top-N neighbours kept sparse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.core.errors import ValidationError
from mlrec.models._item_item import SparseItemItem
from mlrec.models._sparse import top_n_rows
from mlrec.models.base import Progress

__all__ = ["ItemKNN"]

Weighting = Literal["none", "tfidf", "bm25"]
WEIGHTINGS: tuple[str, ...] = ("none", "tfidf", "bm25")


@dataclass(frozen=True)
class ItemKNNParams:
    """Hyper-parameters of ItemKNN.

    Attributes:
        neighbours: most similar items kept per item (the rest are zero).
        shrink: added to the cosine denominator; damps similarities of rare pairs.
        binary: use 0/1 interactions instead of the given weights.
        weighting: ``none``, ``tfidf`` or ``bm25`` re-weighting of users before
            computing similarities (down-weights users with very long histories).
    """

    neighbours: int = 200
    shrink: float = 50.0
    binary: bool = True
    weighting: str = "tfidf"

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ValidationError(f"itemknn: neighbours must be >= 1, got {self.neighbours}")
        if self.shrink < 0:
            raise ValidationError(f"itemknn: shrink must be >= 0, got {self.shrink}")
        if self.weighting not in WEIGHTINGS:
            raise ValidationError(
                f"itemknn: weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}"
            )


def _weight_users(x: sp.csr_matrix, weighting: str) -> sp.csr_matrix:
    """Re-weight a users x items matrix; items are the documents, users the terms."""
    if weighting == "none":
        return x
    n_users, n_items = x.shape
    items_of_user = np.diff(x.indptr).astype(np.float64)
    idf = np.log(n_items / (1.0 + items_of_user))
    idf = np.maximum(idf, 0.0)
    weighted = sp.csr_matrix(x, dtype=np.float32, copy=True)
    row_of = np.repeat(np.arange(n_users), np.diff(x.indptr))
    if weighting == "tfidf":
        weighted.data *= idf[row_of].astype(np.float32)
        return weighted
    k1, b = 1.2, 0.75
    item_length = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
    avg = item_length.mean() if item_length.size else 1.0
    length_norm = (1.0 - b) + b * item_length / max(avg, 1e-12)
    tf = weighted.data.astype(np.float64)
    weighted.data = (
        tf * (k1 + 1.0) / (k1 * length_norm[weighted.indices] + tf) * idf[row_of]
    ).astype(np.float32)
    return weighted


class ItemKNN(SparseItemItem):
    """Scores ``s_uj = Σ_{i ∈ N(j)} x_ui · sim(i, j)`` with ``N(j)`` the top neighbours of ``j``.

    ``sim(i, j) = x_i·x_j / (‖x_i‖ ‖x_j‖ + shrink)`` over item columns. The
    similarity is computed in row blocks, so memory stays at
    ``O(n_items · neighbours)`` plus one dense block.
    """

    algorithm = "itemknn"
    Params = ItemKNNParams
    params: ItemKNNParams
    # mlrec before the shared SparseItemItem base (up to commit 7552bfb and a few
    # after it) saved the same sources x targets matrix as "similarity"
    legacy_state_prefix = "similarity"

    def _fit(self, matrix: sp.csr_matrix, progress: Progress) -> None:
        x = _weight_users(self._prepare(matrix), self.params.weighting)
        n_items = x.shape[1]
        xt = sp.csr_matrix(x.T)
        xc = sp.csc_matrix(x)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0), dtype=np.float64).ravel())
        shrink = self.params.shrink

        def block(start: int, stop: int) -> npt.NDArray[np.float32]:
            dots = (xt[start:stop] @ xc).toarray().astype(np.float64)
            dots /= norms[start:stop, None] * norms[None, :] + shrink + 1e-12
            dots[np.arange(stop - start), np.arange(start, stop)] = 0.0
            progress(0.95 * stop / max(n_items, 1))
            return np.asarray(dots, np.float32)

        # row j holds the neighbours of target item j; scoring wants them as columns
        neighbours = top_n_rows(n_items, n_items, block, self.params.neighbours)
        self.weights = sp.csr_matrix(neighbours.T)
        progress(1.0)
