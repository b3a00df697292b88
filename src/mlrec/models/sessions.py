"""Sessions: a user's events cut where the gap to the previous one exceeds a threshold.

EASE (:mod:`mlrec.models.ease`) can add one row per session to its training
matrix (``session_weight > 0``): its Gram matrix becomes ``XᵀX + w·SᵀS``, where
``S`` is the 0/1 sessions x items matrix. Two items a user rated in the same
sitting then co-occur twice (in the user row and in the session row), two items
rated months apart only once, so the item-item regression learns the "rated
together" signal that :class:`~mlrec.models.sequential.SequentialCooccurrence`
models separately, inside the same closed form. Only training timestamps are
used; scoring still needs only the set of items in a history.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mlrec.core.interactions import Interactions

__all__ = ["has_time", "session_matrix"]


def has_time(events: Interactions) -> bool:
    """Whether the events carry timestamps (not all equal)."""
    return len(events) > 0 and int(events.timestamps.min()) != int(events.timestamps.max())


def session_matrix(events: Interactions, gap: float) -> sp.csr_matrix:
    """The 0/1 sessions x items matrix of ``events``.

    A user's time-ordered events start a new session whenever more than ``gap``
    seconds passed since the previous one (``gap=0``: events of the same second).
    Rows are ordered by user, then time.

    Example:
        >>> data = Interactions.from_arrays(
        ...     ["u", "u", "u"], ["a", "b", "c"], timestamps=[0, 30, 500]
        ... )
        >>> session_matrix(data, gap=60).toarray().tolist()
        [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    n_items = events.n_items
    if len(events) == 0:
        return sp.csr_matrix((0, n_items), dtype=np.float32)
    order = np.lexsort((events.item_idx, events.timestamps, events.user_idx))
    users = events.user_idx[order]
    items = events.item_idx[order]
    times = events.timestamps[order]
    starts = np.r_[True, (users[1:] != users[:-1]) | (np.diff(times) > gap)]
    session = np.cumsum(starts) - 1
    matrix = sp.csr_matrix(
        (np.ones(len(items), np.float32), (session, items)),
        shape=(int(session[-1]) + 1, n_items),
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix
