"""The interaction log shared by every layer: who interacted with what, how much, when."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.core.errors import DataError
from mlrec.core.ids import IdMap

__all__ = ["Interactions", "ItemInfo"]


@dataclass(frozen=True, slots=True)
class ItemInfo:
    """Descriptive metadata of one item, shown to people (not used for scoring)."""

    title: str
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Interactions:
    """A set of (user, item, weight, timestamp) events over fixed id maps.

    Rows are parallel arrays of dense indices into ``users`` and ``items``. Several
    interaction sets (a train and a test split) share the same id maps, so their
    matrices line up.

    Attributes:
        users: external user ids <-> row indices.
        items: external item ids <-> column indices.
        user_idx: user index of each event.
        item_idx: item index of each event.
        weights: strength of each event (1.0 for a plain positive).
        timestamps: seconds since the epoch of each event (0 when unknown).
        item_info: optional titles and categories by external item id.
        name: a short label for reports ("ml-100k", "demo", ...).
    """

    users: IdMap
    items: IdMap
    user_idx: npt.NDArray[np.int64]
    item_idx: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float32]
    timestamps: npt.NDArray[np.int64]
    item_info: dict[str, ItemInfo] = field(default_factory=dict)
    name: str = "interactions"

    def __post_init__(self) -> None:
        n = len(self.user_idx)
        if not (len(self.item_idx) == len(self.weights) == len(self.timestamps) == n):
            raise DataError("interaction arrays must all have the same length")

    def __len__(self) -> int:
        return len(self.user_idx)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def to_csr(self, binary: bool = False) -> sp.csr_matrix:
        """The users x items matrix; duplicate (user, item) pairs are summed.

        Args:
            binary: store 1.0 for every observed pair instead of the weights.
        """
        data = np.ones(len(self), dtype=np.float32) if binary else self.weights
        matrix = sp.csr_matrix(
            (data, (self.user_idx, self.item_idx)),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        if binary:
            matrix.data[:] = 1.0
        return matrix

    def subset(self, mask: npt.NDArray[np.bool_] | npt.NDArray[np.int64]) -> Interactions:
        """The events selected by a boolean mask or index array, same id maps."""
        return Interactions(
            users=self.users,
            items=self.items,
            user_idx=self.user_idx[mask],
            item_idx=self.item_idx[mask],
            weights=self.weights[mask],
            timestamps=self.timestamps[mask],
            item_info=self.item_info,
            name=self.name,
        )

    @classmethod
    def from_arrays(
        cls,
        user_ids: list[str],
        item_ids: list[str],
        weights: npt.ArrayLike | None = None,
        timestamps: npt.ArrayLike | None = None,
        *,
        item_info: dict[str, ItemInfo] | None = None,
        name: str = "interactions",
    ) -> Interactions:
        """Build from external ids, assigning dense indices in first-seen order."""
        if len(user_ids) != len(item_ids):
            raise DataError("user_ids and item_ids must have the same length")
        users, items = IdMap(), IdMap()
        user_idx = np.fromiter((users.add(u) for u in user_ids), np.int64, len(user_ids))
        item_idx = np.fromiter((items.add(i) for i in item_ids), np.int64, len(item_ids))
        n = len(user_ids)
        w = np.ones(n, np.float32) if weights is None else np.asarray(weights, np.float32)
        ts = np.zeros(n, np.int64) if timestamps is None else np.asarray(timestamps, np.int64)
        return cls(users, items, user_idx, item_idx, w, ts, dict(item_info or {}), name)
