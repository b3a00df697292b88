"""RP3beta (Paudel et al., ACM TiiS 2017): a popularity-penalised 3-step random walk."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.core.errors import ValidationError
from mlrec.models._item_item import SparseItemItem
from mlrec.models._sparse import row_normalize, top_n_rows
from mlrec.models.base import Progress

__all__ = ["RP3beta"]


@dataclass(frozen=True)
class RP3betaParams:
    """Hyper-parameters of RP3beta.

    Attributes:
        neighbours: largest transition weights kept per item.
        alpha: exponent applied to the transition probabilities (1 = plain P3).
        beta: popularity penalty; item ``j``'s weight is divided by ``pop(j)^beta``.
        binary: walk on 0/1 interactions instead of the given weights.
        normalize: re-normalise each item's kept weights to sum to 1.
    """

    neighbours: int = 200
    alpha: float = 0.8
    beta: float = 0.5
    binary: bool = True
    normalize: bool = False

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ValidationError(f"rp3beta: neighbours must be >= 1, got {self.neighbours}")
        if self.alpha <= 0:
            raise ValidationError(f"rp3beta: alpha must be > 0, got {self.alpha}")


class RP3beta(SparseItemItem):
    """Item-item weights ``W_ij = (P_iu P_uj)^α-walk / pop(j)^β``, top-N per item.

    Follows Ferrari Dacrema et al.'s implementation: ``P_ui`` is the row-normalised
    user->item matrix, ``P_iu`` the row-normalised item->user matrix, both raised
    element-wise to ``alpha``; scores are ``X @ W``.
    """

    algorithm = "rp3beta"
    Params = RP3betaParams
    params: RP3betaParams

    def _fit(self, matrix: sp.csr_matrix, progress: Progress) -> None:
        x = self._prepare(matrix)
        n_items = x.shape[1]
        p_ui = row_normalize(x)
        p_iu = row_normalize(sp.csr_matrix(x.T))
        if self.params.alpha != 1.0:
            p_ui.data **= self.params.alpha
            p_iu.data **= self.params.alpha
        p_ui_c = sp.csc_matrix(p_ui)
        popularity = np.diff(sp.csc_matrix(x).indptr).astype(np.float64)
        penalty = np.zeros(n_items, np.float64)
        nonzero = popularity > 0
        penalty[nonzero] = popularity[nonzero] ** -self.params.beta

        def block(start: int, stop: int) -> npt.NDArray[np.float32]:
            walk = (p_iu[start:stop] @ p_ui_c).toarray().astype(np.float64)
            walk *= penalty[None, :]
            walk[np.arange(stop - start), np.arange(start, stop)] = 0.0
            progress(0.95 * stop / max(n_items, 1))
            return np.asarray(walk, np.float32)

        weights = top_n_rows(n_items, n_items, block, self.params.neighbours)
        if self.params.normalize:
            weights = row_normalize(weights)
        self.weights = weights
        progress(1.0)
