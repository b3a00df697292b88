"""The :class:`Recommender` interface every algorithm implements.

An algorithm implements three things:

* ``_fit(matrix, progress)``: learn from the users x items training matrix;
* ``score_histories(histories)``: scores of every item for users given only by
  their interaction rows (this is what makes real-time personalisation possible:
  a user's live history is scored without refitting);
* ``_state()`` / ``_set_state(arrays)``: the learned arrays, for artifacts.

Everything else (top-k selection, excluding seen items, filters, external ids,
similar items, save/load with checksums) lives here once.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.core.errors import ModelError, ValidationError
from mlrec.core.ids import IdMap
from mlrec.core.interactions import Interactions, ItemInfo
from mlrec.models.artifacts import Artifact, pack_csr, read_artifact, unpack_csr, write_artifact

__all__ = [
    "ItemFilter",
    "Progress",
    "Recommendation",
    "Recommender",
    "build_params",
    "known_params",
    "top_k",
]

ItemFilter = Callable[[str], bool] | Iterable[str]
"""Either a predicate on external item ids or the collection of allowed item ids."""

Progress = Callable[[float], None]
"""Called with the fraction of training done, from 0.0 to 1.0."""

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommended item: its external id and the model's score."""

    item_id: str
    score: float


def top_k(
    scores: FloatArray, k: int, exclude: sp.csr_matrix | None = None
) -> tuple[IntArray, FloatArray]:
    """Indices and scores of the ``k`` best columns of each row, best first.

    Args:
        scores: ``(n, n_items)`` scores; modified in place when ``exclude`` is given.
        k: how many per row (capped at the number of columns).
        exclude: ``(n, n_items)`` sparse matrix whose non-zeros are set to ``-inf``.

    Returns:
        ``(indices, scores)``, each ``(n, k)``; excluded items can only appear when a
        row has fewer than ``k`` allowed items, with score ``-inf``. Equal scores are
        ordered by column index, so the top ``k`` is the start of any longer top list.
    """
    if exclude is not None and exclude.nnz:
        coo = exclude.tocoo()
        scores[coo.row, coo.col] = -np.inf
    n_items = scores.shape[1]
    k = min(k, n_items)
    if k <= 0:
        return np.empty((scores.shape[0], 0), np.int64), np.empty((scores.shape[0], 0), np.float32)
    if k < n_items:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(scores, part, axis=1)
        if _keep_lowest_tied(scores, part, part_scores):
            part_scores = np.take_along_axis(scores, part, axis=1)
    else:
        part = np.tile(np.arange(n_items), (scores.shape[0], 1))
        part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    indices = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return indices, np.take_along_axis(part_scores, order, axis=1).astype(np.float32)


def _keep_lowest_tied(scores: FloatArray, part: IntArray, part_scores: FloatArray) -> bool:
    """Make each row of ``part`` (argpartition's top k, scored ``part_scores``) keep the
    lowest column indices among the columns tied at its smallest score, in place.

    argpartition keeps any of them, and not the same ones for every ``k`` (the top 10
    of a row with ties was not the start of its top 20). Returns whether it changed
    ``part``.
    """
    boundary = part_scores.min(axis=1, keepdims=True)
    tied, tied_in_part = scores == boundary, part_scores == boundary
    if np.count_nonzero(tied) == np.count_nonzero(tied_in_part):  # the usual case
        return False
    straddling = np.count_nonzero(tied, axis=1) > np.count_nonzero(tied_in_part, axis=1)
    for row in np.flatnonzero(straddling):
        above = np.flatnonzero(scores[row] > boundary[row, 0])
        at = np.flatnonzero(tied[row])
        part[row] = np.concatenate([above, at[: part.shape[1] - len(above)]])
    return True


def known_params(fields: set[str]) -> str:
    """``known: a, b`` for an error message, or that the algorithm takes none."""
    return f"known: {', '.join(sorted(fields))}" if fields else "it takes no parameters"


def build_params(algorithm: str, params_class: type[Any], params: dict[str, Any]) -> Any:
    """``params_class(**params)``, refusing unknown names and non-finite numbers first.

    Every way of making a model's hyper-parameters goes through here (the
    constructor, :func:`~mlrec.models.parse_params`, loading an artifact), so a
    ``nan`` or ``inf`` is refused once for every algorithm: the Params classes
    compare values with ``<``, which NaN passes.

    Raises:
        ValidationError: an unknown parameter name, a non-finite number, or whatever
            ``params_class`` refuses.
    """
    fields = {f.name for f in dataclasses.fields(params_class)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValidationError(
            f"{algorithm}: unknown parameter(s) {', '.join(unknown)}; {known_params(fields)}"
        )
    for name, value in params.items():
        if isinstance(value, float | np.floating) and not math.isfinite(value):
            raise ValidationError(f"{algorithm}: {name} must be a finite number, got {value}")
    try:
        return params_class(**params)
    except TypeError as exc:
        raise ValidationError(f"{algorithm}: {exc}") from None


def _id_map(ids: object, what: str) -> IdMap:
    """The id map of a manifest's ``users`` or ``items`` list, which must be distinct strings."""
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise TypeError(f"its {what} are not a list of string ids")
    id_map = IdMap(ids)
    if len(id_map) != len(ids):
        raise ValueError(f"its {what} list {len(ids) - len(id_map)} id(s) more than once")
    return id_map


class Recommender(ABC):
    """Base class of every recommendation algorithm.

    Subclasses declare ``algorithm`` (the registry name) and ``Params`` (a frozen
    dataclass of hyper-parameters with defaults: the defaults are what users get).

    Example:
        >>> model = EASE(l2=300.0).fit(train)                      # doctest: +SKIP
        >>> model.recommend("u42", k=10)                            # doctest: +SKIP
        >>> model.recommend_from_history(["i1", "i7"], k=10)        # doctest: +SKIP
    """

    algorithm: ClassVar[str]
    Params: ClassVar[type[Any]]

    def __init__(self, **params: Any) -> None:
        self.params = build_params(self.algorithm, self.Params, params)
        self.users = IdMap()
        self.items = IdMap()
        self.user_items: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)
        self.item_info: dict[str, ItemInfo] = {}
        self.fitted = False

    # -- to implement -------------------------------------------------------------

    @abstractmethod
    def _fit(self, matrix: sp.csr_matrix, progress: Progress) -> None:
        """Learn from the users x items matrix (weights as given by the data)."""

    @abstractmethod
    def score_histories(self, histories: sp.csr_matrix) -> FloatArray:
        """Scores ``(n, n_items)`` for users described only by their history rows."""

    @abstractmethod
    def _state(self) -> dict[str, npt.NDArray[Any]]:
        """The learned arrays to save."""

    @abstractmethod
    def _set_state(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        """Restore what :meth:`_state` returned."""

    def retrieve(self, histories: sp.csr_matrix, k: int) -> tuple[IntArray, FloatArray] | None:
        """Top-``k`` unseen items per history row without scoring the whole catalogue.

        Models with an approximate nearest-neighbour index override this for large
        catalogues; ``None`` (the default) means "score densely with
        :meth:`score_histories`".
        """
        return None

    @property
    def has_index(self) -> bool:
        """Whether :meth:`retrieve` answers from an index rather than returning None."""
        return False

    @property
    def additive_weights(self) -> FloatArray | None:
        """Dense ``B`` with ``score_histories(h) == (h != 0) @ B`` for every history ``h``.

        A model whose scores add up item by item over a 0/1 history (EASE on binary
        data) returns its item-item matrix; a server can then keep each known user's
        training-history scores and add only the rows of live items per request.
        ``None`` (the default): scores are not additive that way.
        """
        return None

    def score_users(self, user_indices: IntArray) -> FloatArray:
        """Scores of known users by dense index; models with user factors override."""
        return self.score_histories(self.user_items[user_indices])

    def item_similarities(self, item_index: int) -> FloatArray:
        """Similarity of one item to every item; default: score a one-item history."""
        history = sp.csr_matrix(
            ([1.0], ([0], [item_index])), shape=(1, self.n_items), dtype=np.float32
        )
        row: FloatArray = self.score_histories(history)[0]
        return row

    # -- shared behaviour --------------------------------------------------------

    @property
    def n_items(self) -> int:
        return len(self.items)

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as a plain dict."""
        return dataclasses.asdict(self.params)

    def fit(self, interactions: Interactions, progress: Progress | None = None) -> Self:
        """Train on ``interactions``; keeps its id maps and item metadata.

        Args:
            interactions: the training log (weights are used as given).
            progress: optional callback with the fraction done.
        """
        if len(interactions) == 0:
            raise ModelError(f"{self.algorithm}: cannot fit on an empty interaction set")
        self.users = interactions.users
        self.items = interactions.items
        self.item_info = interactions.item_info
        self.user_items = interactions.to_csr()
        self._fit(self.user_items, progress or (lambda _fraction: None))
        self.fitted = True
        return self

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise ModelError(f"{self.algorithm}: the model is not fitted")

    def _allowed_mask(self, item_filter: ItemFilter | None) -> npt.NDArray[np.bool_] | None:
        if item_filter is None:
            return None
        mask = np.zeros(self.n_items, dtype=bool)
        if callable(item_filter):
            for index, item_id in enumerate(self.items.ids()):
                mask[index] = bool(item_filter(item_id))
        else:
            for item_id in item_filter:
                found = self.items.get(item_id)
                if found is not None:
                    mask[found] = True
        return mask

    def _select(
        self,
        scores: FloatArray,
        k: int,
        exclude: sp.csr_matrix | None,
        item_filter: ItemFilter | None,
    ) -> list[Recommendation]:
        if k < 1:
            raise ValidationError(f"k must be at least 1, got {k}")
        mask = self._allowed_mask(item_filter)
        if mask is not None:
            scores[0, ~mask] = -np.inf
        indices, best = top_k(scores, k, exclude)
        return [
            Recommendation(self.items.id(int(i)), float(s))
            for i, s in zip(indices[0], best[0], strict=True)
            if np.isfinite(s)
        ]

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        exclude_seen: bool = True,
        filter: ItemFilter | None = None,
    ) -> list[Recommendation]:
        """Top-``k`` items for a user seen in training.

        Args:
            user_id: external id of a training user.
            k: number of items wanted.
            exclude_seen: drop items the user interacted with in training.
            filter: allowed item ids, or a predicate on item ids.

        Raises:
            NotFoundError: the user was not in the training data.
        """
        self._require_fitted()
        user = self.users.index(user_id)
        rows = np.asarray([user], dtype=np.int64)
        scores = self.score_users(rows)
        exclude = self.user_items[rows] if exclude_seen else None
        return self._select(scores, k, exclude, filter)

    def recommend_from_history(
        self,
        item_ids: Sequence[str],
        k: int = 10,
        weights: Sequence[float] | None = None,
        exclude_seen: bool = True,
        filter: ItemFilter | None = None,
    ) -> list[Recommendation]:
        """Top-``k`` items for a user known only by the items just interacted with.

        Unknown item ids are ignored (they carry no signal for this model); with no
        known item the answer is the model's scores for an empty history.
        """
        self._require_fitted()
        history = self.history_matrix([list(item_ids)], [list(weights)] if weights else None)
        scores = self.score_histories(history)
        return self._select(scores, k, history if exclude_seen else None, filter)

    def history_matrix(
        self,
        histories: Sequence[Sequence[str]],
        weights: Sequence[Sequence[float]] | None = None,
    ) -> sp.csr_matrix:
        """Rows of interactions over this model's items, ignoring unknown item ids."""
        rows: list[int] = []
        cols: list[int] = []
        data: list[float] = []
        for row, item_ids in enumerate(histories):
            row_weights = weights[row] if weights is not None else [1.0] * len(item_ids)
            for item_id, weight in zip(item_ids, row_weights, strict=True):
                index = self.items.get(item_id)
                if index is not None:
                    rows.append(row)
                    cols.append(index)
                    data.append(float(weight))
        matrix = sp.csr_matrix(
            (np.asarray(data, np.float32), (rows, cols)),
            shape=(len(histories), self.n_items),
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        return matrix

    def recommend_batch(
        self, user_indices: IntArray, k: int = 10, exclude_seen: bool = True, chunk: int = 512
    ) -> tuple[IntArray, FloatArray]:
        """Top-``k`` item indices and scores for many training users by dense index."""
        self._require_fitted()
        out_idx: list[IntArray] = []
        out_scores: list[FloatArray] = []
        for start in range(0, len(user_indices), chunk):
            rows = user_indices[start : start + chunk]
            scores = self.score_users(rows)
            exclude = self.user_items[rows] if exclude_seen else None
            idx, best = top_k(scores, k, exclude)
            out_idx.append(idx)
            out_scores.append(best)
        if not out_idx:
            return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
        return np.vstack(out_idx), np.vstack(out_scores)

    def similar_items(self, item_id: str, k: int = 10) -> list[Recommendation]:
        """The ``k`` items most similar to ``item_id`` (itself excluded)."""
        self._require_fitted()
        if k < 1:
            raise ValidationError(f"k must be at least 1, got {k}")
        index = self.items.index(item_id)
        scores = self.item_similarities(index).astype(np.float32, copy=True)[None, :]
        scores[0, index] = -np.inf
        indices, best = top_k(scores, k)
        return [
            Recommendation(self.items.id(int(i)), float(s))
            for i, s in zip(indices[0], best[0], strict=True)
            if np.isfinite(s)
        ]

    # -- persistence -------------------------------------------------------------

    def save(self, directory: str | Path) -> str:
        """Write the model as an artifact directory; returns its content sha256."""
        self._require_fitted()
        manifest = {
            "algorithm": self.algorithm,
            "params": self.get_params(),
            "users": self.users.ids(),
            "items": self.items.ids(),
            "item_info": {
                item: {"title": info.title, "categories": list(info.categories)}
                for item, info in self.item_info.items()
            },
        }
        arrays = {**pack_csr("user_items", self.user_items), **self._state()}
        return write_artifact(Path(directory), Artifact(manifest=manifest, arrays=arrays))

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Self:
        """Rebuild a fitted model of this class from a verified artifact.

        An artifact whose checksums match may still come from another mlrec (or be
        edited with its checksums recomputed): its manifest and arrays are checked to
        fit together before the model is returned.

        Raises:
            ModelError: another algorithm, or a manifest or arrays this mlrec cannot
                read, or that do not fit together (the number of users or items,
                the shapes of the learned arrays).
            ValidationError: hyper-parameters this mlrec does not know or refuses.
        """
        manifest = artifact.manifest
        if manifest.get("algorithm") != cls.algorithm:
            raise ModelError(f"artifact holds {manifest.get('algorithm')!r}, not {cls.algorithm!r}")
        params = manifest.get("params", {})
        if not isinstance(params, dict):
            raise ModelError(
                f"{cls.algorithm} artifact: params is a JSON {type(params).__name__}, "
                "not an object: it was saved in a layout this mlrec cannot read"
            )
        model = cls(**params)
        try:
            model.users = _id_map(manifest["users"], "users")
            model.items = _id_map(manifest["items"], "items")
            model.item_info = {
                item: ItemInfo(info["title"], tuple(info.get("categories", ())))
                for item, info in manifest.get("item_info", {}).items()
            }
            model.user_items = unpack_csr("user_items", artifact.arrays)
            model._set_state(artifact.arrays)
            model._restored()
        except KeyError as exc:
            # written by another mlrec whose layout this one does not know
            raise ModelError(
                f"{cls.algorithm} artifact lacks {exc.args[0]!r}: it was saved in a layout "
                "this mlrec cannot read"
            ) from None
        except (TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            raise ModelError(
                f"{cls.algorithm} artifact: it was saved in a layout this mlrec cannot read ({exc})"
            ) from None
        model.fitted = True
        model._check_restored()
        return model

    def _restored(self) -> None:  # noqa: B027 - a hook that most models leave empty
        """Called by :meth:`from_artifact` once ids and arrays are set (a hook)."""

    def _check_restored(self) -> None:
        """Raise :class:`ModelError` unless the loaded ids and arrays fit together."""
        n_users, n_items = len(self.users), len(self.items)
        if self.user_items.shape != (n_users, n_items):
            rows, cols = self.user_items.shape
            raise ModelError(
                f"{self.algorithm} artifact does not fit together: its training matrix is "
                f"{rows} x {cols}, but its manifest lists {n_users} users and {n_items} items"
            )
        users = np.unique(np.asarray([0, n_users - 1], dtype=np.int64)) if n_users else None
        try:
            shapes = [self.score_histories(sp.csr_matrix((1, n_items), dtype=np.float32)).shape]
            if users is not None:
                shapes.append(self.score_users(users).shape[1:])
        except (TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise ModelError(
                f"{self.algorithm} artifact does not fit together: its arrays cannot score "
                f"its {n_items} items and {n_users} users ({exc})"
            ) from None
        if shapes[0] != (1, n_items) or any(shape != (n_items,) for shape in shapes[1:]):
            raise ModelError(
                f"{self.algorithm} artifact does not fit together: its arrays score "
                f"{shapes[0][-1]} items, but its manifest lists {n_items}"
            )

    @classmethod
    def load(cls, directory: str | Path, expected_sha256: str | None = None) -> Self:
        """Load an artifact written by :meth:`save`, verifying its checksum."""
        return cls.from_artifact(read_artifact(Path(directory), expected_sha256))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
