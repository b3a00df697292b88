"""Sequential co-occurrence: items rated close together in time are related."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.core.errors import ValidationError
from mlrec.core.interactions import Interactions
from mlrec.models._item_item import SparseItemItem
from mlrec.models._sparse import top_n_rows
from mlrec.models.base import Progress

__all__ = ["SequentialCooccurrence"]


@dataclass(frozen=True)
class SequentialParams:
    """Hyper-parameters of the sequential co-occurrence model.

    Attributes:
        window: two items are linked when at most ``window`` positions apart in a
            user's time-ordered history.
        beta: popularity normalisation; ``W_ij = count_ij / ((pop_i pop_j)^beta + 1)``
            (0.5 = cosine-like).
        neighbours: largest weights kept per item.
    """

    window: int = 3
    beta: float = 0.5
    neighbours: int = 200

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValidationError(f"sequential: window must be >= 1, got {self.window}")
        if self.neighbours < 1:
            raise ValidationError(f"sequential: neighbours must be >= 1, got {self.neighbours}")
        if self.beta < 0:
            raise ValidationError(f"sequential: beta must be >= 0, got {self.beta}")


class SequentialCooccurrence(SparseItemItem):
    """Item-item weights from adjacency in users' time-ordered histories; scores ``X @ W``.

    Users tend to interact with related items in the same sitting (a MovieLens
    user rates the films one page of the site shows together), a signal a bag of
    items does not carry. Training needs timestamps; without them (all equal)
    the model learns nothing and scores every item 0, which makes it a harmless
    component of a blend. Scoring only needs the set of items in a history.
    """

    algorithm = "sequential"
    Params = SequentialParams
    params: SequentialParams

    def fit(self, interactions: Interactions, progress: Progress | None = None) -> Self:
        # the time order is not part of the matrix _fit receives
        self._events = interactions
        try:
            return super().fit(interactions, progress)
        finally:
            del self._events

    def _fit(self, matrix: sp.csr_matrix, progress: Progress) -> None:
        events = self._events
        n_items = matrix.shape[1]
        counts = sp.csr_matrix((n_items, n_items), dtype=np.float32)
        if len(events) and events.timestamps.min() != events.timestamps.max():
            order = np.lexsort((events.item_idx, events.timestamps, events.user_idx))
            users = events.user_idx[order]
            items = events.item_idx[order]
            rows: list[npt.NDArray[np.int64]] = []
            cols: list[npt.NDArray[np.int64]] = []
            for distance in range(1, self.params.window + 1):
                same_user = users[:-distance] == users[distance:]
                a, b = items[:-distance][same_user], items[distance:][same_user]
                different = a != b
                rows += [a[different], b[different]]
                cols += [b[different], a[different]]
            row, col = np.concatenate(rows), np.concatenate(cols)
            counts = sp.csr_matrix(
                (np.ones(len(row), np.float32), (row, col)), shape=(n_items, n_items)
            )
            counts.sum_duplicates()
        progress(0.5)
        popularity = np.diff(sp.csc_matrix(matrix).indptr).astype(np.float64)
        scale = popularity**self.params.beta
        weights = sp.csr_matrix(counts, dtype=np.float64)
        coo = weights.tocoo()
        weights.data = (coo.data / (scale[coo.row] * scale[coo.col] + 1.0)).astype(np.float64)

        by_column = sp.csc_matrix(weights)

        def block(start: int, stop: int) -> npt.NDArray[np.float32]:
            # column j of W scores target j; keep the strongest sources per target
            return np.asarray(by_column[:, start:stop].T.toarray(), np.float32)

        self.weights = sp.csr_matrix(
            top_n_rows(n_items, n_items, block, self.params.neighbours).T, dtype=np.float32
        )
        progress(1.0)
