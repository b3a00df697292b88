"""EASE (Steck, WWW 2019) with EDLAE's dropout penalty (Steck, NeurIPS 2020).

A closed-form item-item linear autoencoder. ``dropout > 0`` gives EDLAE
("Autoencoders that don't overfit towards the identity"): the ridge penalty of
item ``i`` grows with its popularity, ``Λ = dropout / (1 - dropout) · diag(XᵀX) + l2·I``,
which is what training the autoencoder with input dropout of that rate amounts to
in closed form; the zero-diagonal constraint of EASE is kept.

``session_weight > 0`` adds one row per training session (see
:mod:`mlrec.models.sessions`), so items rated in the same sitting count as more
strongly related than items a user rated months apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.core.errors import ModelError, ValidationError
from mlrec.core.interactions import Interactions
from mlrec.models.base import FloatArray, Progress, Recommender
from mlrec.models.sessions import has_time, session_matrix

__all__ = ["EASE"]

MAX_DENSE_ITEMS = 40_000


@dataclass(frozen=True)
class EASEParams:
    """Hyper-parameters of EASE.

    The defaults were chosen on a validation split carved from the ML-100K
    training split (``bench/quality.py``) and checked on ML latest-small: there
    the heavier dropout (0.85) and rank weights that won on ML-100K validation
    lost to plain EASE, ``dropout=0.5`` on 0/1 data did not.

    Attributes:
        l2: ridge penalty on the item-item weights (larger = smoother), in units of
            the mean training weight (weights are divided by their mean first, so
            the same ``l2`` suits 0/1 data and ratings).
        dropout: EDLAE's dropout rate in ``[0, 1)``; adds
            ``dropout / (1 - dropout) · (XᵀX)_ii`` to item ``i``'s penalty (0 = EASE).
        binary: train on 0/1 interactions instead of weights derived from the given
            ones.
        rank_weights: when not ``binary``, replace each user's weights by their
            percentile rank within that user's row, in ``(0.5, 1.5)`` (ties share
            their mean rank): only the order of a user's weights matters, so star
            ratings and heavy-tailed play counts behave alike.
        session_weight: weight ``w`` of the session rows added to the Gram matrix,
            ``XᵀX + w·SᵀS`` (see :mod:`mlrec.models.sessions`); 0 = plain EASE.
            Needs training timestamps; without them the session rows are skipped.
        session_gap: seconds of inactivity that start a new session.
    """

    l2: float = 500.0
    dropout: float = 0.5
    binary: bool = True
    rank_weights: bool = True
    session_weight: float = 0.0
    session_gap: float = 60.0

    def __post_init__(self) -> None:
        if self.l2 < 0:
            raise ValidationError(f"ease: l2 must be >= 0, got {self.l2}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValidationError(f"ease: dropout must be in [0, 1), got {self.dropout}")
        if self.session_weight < 0:
            raise ValidationError(f"ease: session_weight must be >= 0, got {self.session_weight}")
        if self.session_gap < 0:
            raise ValidationError(f"ease: session_gap must be >= 0, got {self.session_gap}")


def rank_within_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each stored value replaced by its percentile rank within its row, in ``(0.5, 1.5)``.

    Ties get their mean rank, so a row of equal weights becomes all 1.0.
    """
    x = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    x.sort_indices()
    lengths = np.diff(x.indptr)
    rows = np.repeat(np.arange(x.shape[0]), lengths)
    order = np.lexsort((x.data, rows))
    sorted_rows, sorted_values = rows[order], x.data[order]
    position = np.arange(x.nnz) - x.indptr[sorted_rows]
    starts = np.flatnonzero(
        np.r_[
            True, (sorted_rows[1:] != sorted_rows[:-1]) | (sorted_values[1:] != sorted_values[:-1])
        ]
    )
    sizes = np.diff(np.r_[starts, x.nnz])
    mean_position = (
        np.repeat(np.add.reduceat(position, starts) / sizes, sizes) if x.nnz else position
    )
    ranks = np.empty(x.nnz, np.float64)
    ranks[order] = 0.5 + (mean_position + 0.5) / lengths[sorted_rows]
    x.data = ranks.astype(np.float32)
    return x


class EASE(Recommender):
    """Item-item weights ``B`` with zero diagonal solving ``min ||X - XB||² + ||Λ^½ B||²``.

    ``Λ = l2·I`` for EASE (``dropout=0``); EDLAE adds the dropout term to the
    diagonal (see the module docstring).

    Dense in the number of items: fine up to tens of thousands of items; larger
    catalogues should use an embedding model with ANN retrieval.
    """

    algorithm = "ease"
    Params = EASEParams
    params: EASEParams

    def fit(self, interactions: Interactions, progress: Progress | None = None) -> Self:
        # session rows need the time order, which is not part of the matrix _fit gets
        self._sessions: sp.csr_matrix | None = None
        if self.params.session_weight > 0 and has_time(interactions):
            self._sessions = session_matrix(interactions, self.params.session_gap)
        try:
            return super().fit(interactions, progress)
        finally:
            self._sessions = None

    def _fit(self, matrix: sp.csr_matrix, progress: Progress) -> None:
        n_items = matrix.shape[1]
        if n_items > MAX_DENSE_ITEMS:
            raise ModelError(
                f"ease: {n_items} items need a dense {n_items}² matrix; "
                f"use it up to {MAX_DENSE_ITEMS} items or pick 'als' with ANN retrieval"
            )
        x = self._prepare(matrix)
        scale = float(np.abs(x.data).mean()) if x.nnz else 1.0
        scale = scale if scale > 0 else 1.0
        x.data /= scale
        gram = self._gram(x)
        progress(0.3)
        diagonal = np.diag(gram).copy()
        dropout = self.params.dropout
        gram[np.diag_indices(n_items)] += self.params.l2 + dropout / (1.0 - dropout) * diagonal
        import scipy.linalg  # only fitting needs it: keep serving start-up light

        try:
            # Not in place: scipy 1.17 inverts a symmetric matrix in place by Cholesky and,
            # when that fails (a singular matrix), retries on the overwritten input and
            # crashes the process (scipy issue 26045). Freeing the input before B is formed
            # keeps the peak at two n_items² matrices, as before.
            precision = scipy.linalg.inv(gram, check_finite=False)
        except np.linalg.LinAlgError:
            raise ModelError(
                f"ease: cannot fit with l2={self.params.l2:g}: the item-item matrix is "
                "singular (e.g. an item no training user saw, two items seen by the same "
                "users, or more items than users without dropout); use l2 > 0"
            ) from None
        del gram
        progress(0.9)
        weights = precision / (-np.diag(precision))
        weights[np.diag_indices(n_items)] = 0.0
        # histories are scored unscaled: fold the weight scale into B instead
        weights /= scale
        # C order: scipy multiplies a sparse history by a dense matrix row-wise, and an
        # F-ordered matrix would be copied (11 MB for ML-100K) on every request.
        self.weights: FloatArray = np.ascontiguousarray(weights, dtype=np.float32)
        progress(1.0)

    def _gram(self, x: sp.csr_matrix) -> npt.NDArray[np.float64]:
        """``XᵀX + w·SᵀS`` of the prepared, scaled training matrix and the sessions."""
        gram = np.asarray((x.T @ x).toarray(), dtype=np.float64)
        sessions = getattr(self, "_sessions", None)
        if sessions is not None and sessions.shape[1] == gram.shape[0]:
            gram += self.params.session_weight * (sessions.T @ sessions).toarray()
        return gram

    def _prepare(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        if self.params.binary:
            x = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
            x.data[:] = 1.0
            return x
        if self.params.rank_weights:
            return rank_within_rows(matrix)
        return sp.csr_matrix(matrix, dtype=np.float32, copy=True)

    def score_histories(self, histories: sp.csr_matrix) -> FloatArray:
        x = self._prepare(histories)
        return np.asarray(x @ self.weights, dtype=np.float32)

    def item_similarities(self, item_index: int) -> FloatArray:
        return np.asarray(self.weights[item_index], dtype=np.float32)

    @property
    def additive_weights(self) -> FloatArray | None:
        # binary histories are scored as x @ B with x in {0, 1}: additive per item
        return self.weights if self.params.binary else None

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {"weights": self.weights}

    def _set_state(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        self.weights = np.ascontiguousarray(arrays["weights"], dtype=np.float32)
