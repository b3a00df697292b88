"""Sparse helpers shared by the neighbourhood models (private)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["BLOCK_BYTES", "row_normalize", "top_n_rows"]

BLOCK_BYTES = 64 << 20
"""Memory budget of one dense block of the item-item product."""


def row_normalize(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its sum (L1); empty rows stay empty."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    sums = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    sums[sums == 0] = 1.0
    matrix.data /= np.repeat(sums, np.diff(matrix.indptr)).astype(np.float32)
    return matrix


def top_n_rows(
    n_rows: int,
    n_cols: int,
    block_rows: Callable[[int, int], npt.NDArray[np.float32]],
    n: int,
) -> sp.csr_matrix:
    """Keep the ``n`` largest positive entries of every row of a matrix built in blocks.

    ``block_rows(start, stop)`` returns the dense rows ``start:stop``; the full
    ``n_rows x n_cols`` matrix is never held at once.
    """
    block = max(1, min(n_rows, BLOCK_BYTES // max(1, 4 * n_cols)))
    keep = min(n, n_cols)
    indptr = [np.zeros(1, np.int64)]
    indices: list[npt.NDArray[np.int64]] = []
    values: list[npt.NDArray[np.float32]] = []
    total = 0
    for start in range(0, n_rows, block):
        stop = min(n_rows, start + block)
        dense = np.asarray(block_rows(start, stop), dtype=np.float32)
        if keep < n_cols:
            cols = np.argpartition(-dense, keep - 1, axis=1)[:, :keep]
        else:
            cols = np.tile(np.arange(n_cols), (stop - start, 1))
        vals = np.take_along_axis(dense, cols, axis=1)
        positive = vals > 0
        counts = positive.sum(axis=1)
        indices.append(cols[positive].astype(np.int64))
        values.append(vals[positive].astype(np.float32))
        indptr.append(total + np.cumsum(counts))
        total += int(counts.sum())
    result = sp.csr_matrix(
        (
            np.concatenate(values) if values else np.empty(0, np.float32),
            np.concatenate(indices) if indices else np.empty(0, np.int64),
            np.concatenate(indptr),
        ),
        shape=(n_rows, n_cols),
    )
    result.sort_indices()
    return result
