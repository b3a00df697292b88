"""MostPopular: the same items, by number of distinct users, for everyone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.models.base import FloatArray, Progress, Recommender

__all__ = ["MostPopular"]


@dataclass(frozen=True)
class MostPopularParams:
    """MostPopular has no hyper-parameters."""


class MostPopular(Recommender):
    """Ranks items by how many users interacted with them (the cold-start fallback)."""

    algorithm = "most_popular"
    Params = MostPopularParams

    def _fit(self, matrix: sp.csr_matrix, progress: Progress) -> None:
        self.popularity: FloatArray = np.asarray((matrix > 0).sum(axis=0), dtype=np.float32).ravel()
        progress(1.0)

    def score_histories(self, histories: sp.csr_matrix) -> FloatArray:
        return np.tile(self.popularity, (histories.shape[0], 1))

    def item_similarities(self, item_index: int) -> FloatArray:
        return self.popularity.copy()

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {"popularity": self.popularity}

    def _set_state(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        self.popularity = arrays["popularity"].astype(np.float32)
