"""The shared shape of the sparse item-item models (private).

ItemKNN, RP3beta and the sequential co-occurrence model all learn one sparse
``n_items x n_items`` matrix ``W`` (row = source item, column = target item) and
score a history as ``X @ W``; only how ``W`` is learned differs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.models.artifacts import pack_csr, unpack_csr
from mlrec.models.base import FloatArray, Recommender

__all__ = ["SparseItemItem"]


class SparseItemItem(Recommender):
    """A :class:`Recommender` whose state is one sparse item-item matrix ``weights``.

    Subclasses implement ``_fit`` and set ``self.weights`` (CSR, sources x
    targets); histories are 0/1 unless :meth:`_binary` says otherwise.
    """

    weights: sp.csr_matrix
    legacy_state_prefix: ClassVar[str | None] = None
    """The name ``weights`` had in artifacts of an older mlrec, read when ``weights`` is
    absent (artifact format 1 still loads)."""

    def _binary(self) -> bool:
        """Whether histories (and training rows) are used as 0/1; ``params.binary`` if any."""
        return bool(getattr(self.params, "binary", True))

    def _prepare(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        x = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        if self._binary():
            x.data[:] = 1.0
        return x

    def score_histories(self, histories: sp.csr_matrix) -> FloatArray:
        scores = self._prepare(histories) @ self.weights
        return np.asarray(scores.toarray() if sp.issparse(scores) else scores, dtype=np.float32)

    def item_similarities(self, item_index: int) -> FloatArray:
        row: FloatArray = np.asarray(self.weights[item_index].toarray()[0], dtype=np.float32)
        return row

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return pack_csr("weights", self.weights)

    def _set_state(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        prefix = "weights"
        legacy = self.legacy_state_prefix
        if f"{prefix}.shape" not in arrays and legacy and f"{legacy}.shape" in arrays:
            prefix = legacy
        self.weights = unpack_csr(prefix, arrays)
