"""Approximate nearest-neighbour retrieval over item embeddings (HNSW via hnswlib).

Embedding models (ALS, two-tower) score an item by the dot product of a user vector
and an item vector. Scoring every item is exact but linear in the catalogue; an
:class:`AnnIndex` answers the same top-``k`` question in roughly logarithmic time,
missing a few of the true neighbours (``bench/ann.py`` measures how many: the
defaults keep recall@100 at or above 0.95 on a 1M-item, 64-d catalogue).

:func:`exact_search` is the brute-force baseline with the same signature; use it for
small catalogues and to measure recall.

Items are dense ``int`` indices ``0..n-1`` (the rows of the matrix given to
:meth:`AnnIndex.build`); map them to external ids with the model's ``IdMap``.

Persistence follows the no-pickle artifact rule: :meth:`AnnIndex.to_arrays` returns
plain numpy arrays (hnswlib's native index bytes as ``uint8``) for the artifact's
``.npz``, whose sha256 the manifest records; :meth:`AnnIndex.from_arrays` reverses it,
after checking every header field, neighbour id and level of those bytes (hnswlib's
own loader trusts them).

Example:
    >>> index = AnnIndex.build(item_factors, metric="ip")          # doctest: +SKIP
    >>> items, scores = index.search(user_factors[:8], k=100,        # doctest: +SKIP
    ...                              exclude=user_items[:8])
    >>> arrays = index.to_arrays()      # -> Artifact(arrays={**arrays, ...})  # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.core.errors import ModelError, ValidationError
from mlrec.models._hnsw_format import check_index_bytes

__all__ = ["DEFAULT_PARAMS", "AnnIndex", "Exclude", "Metric", "exact_search", "insertion_order"]

Metric = Literal["ip", "cosine"]
"""``"ip"``: inner product (ALS scores); ``"cosine"``: inner product of unit vectors."""

Exclude: TypeAlias = "sp.csr_matrix | Sequence[Collection[int]]"
"""Items to leave out, per query: a ``(m, n)`` sparse matrix whose non-zeros are the
excluded items (e.g. the users' rows of the interaction matrix), or one collection
of item indices per query."""

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

DEFAULT_PARAMS: dict[str, int] = {"M": 24, "ef_construction": 100, "ef_search": 1536}
"""HNSW defaults, measured with ``bench/ann.py`` (1M x 64-d ALS-like items, k=100).

Inner product with a wide spread of item norms is much harder for HNSW than
cosine: with these graph parameters ``ef_search=1024`` gives recall@100 just under
0.95 and 1536 gives 0.956, at p99 7.6 ms per single-thread query against 114 ms for
brute force. A denser graph (M=32, ef_construction=200) reached 0.95 at
``ef_search=100`` on 100k items but took about twice as long to build. Lower
``ef_search`` for speed when recall 0.9 is enough; it is not fixed at build time.
"""

_FORMAT = 1
_METRICS: tuple[Metric, ...] = ("ip", "cosine")
_SPACES = {"ip": "ip", "cosine": "cosine"}
# Above this share of the catalogue, a graph search costs as much as brute force and
# may not find that many neighbours, so the index scores every stored vector instead.
_EXACT_FALLBACK_SHARE = 0.25


def _hnswlib() -> Any:
    try:
        import hnswlib
    except ImportError:  # pragma: no cover - hnswlib is a core dependency
        raise ModelError("ANN retrieval needs hnswlib: pip install 'hnswlib>=0.8'") from None
    return hnswlib


def _as_matrix(name: str, values: npt.ArrayLike, dim: int | None = None) -> FloatArray:
    array = np.ascontiguousarray(values, dtype=np.float32)
    if array.ndim == 1 and dim is not None and array.shape[0] == dim:
        array = array[None, :]
    if array.ndim != 2:
        raise ValidationError(f"{name} must be a 2-D (n, d) array, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValidationError(f"{name} have {array.shape[1]} dimensions, the index has {dim}")
    if not np.isfinite(array).all():
        raise ValidationError(f"{name} contain NaN or infinite values")
    return array


def _check_metric(metric: str) -> Metric:
    if metric not in _METRICS:
        raise ValidationError(f"metric must be one of {', '.join(_METRICS)}, got {metric!r}")
    return metric


def _check_k(k: int) -> None:
    if k < 1:
        raise ValidationError(f"k must be at least 1, got {k}")


def _normalise(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: FloatArray = (vectors / np.maximum(norms, 1e-30)).astype(np.float32)
    return unit


def _exclusions(exclude: Exclude | None, m: int, n: int) -> list[IntArray] | None:
    """One sorted array of excluded in-range item indices per query (None: nothing)."""
    if exclude is None:
        return None
    if sp.issparse(exclude):
        csr = sp.csr_matrix(exclude)
        if csr.shape[0] != m:
            raise ValidationError(f"exclude has {csr.shape[0]} rows for {m} queries")
        csr_rows = []
        for i in range(m):
            row = np.unique(csr.indices[csr.indptr[i] : csr.indptr[i + 1]]).astype(np.int64)
            csr_rows.append(row[row < n])
        return csr_rows
    if len(exclude) != m:
        raise ValidationError(f"exclude has {len(exclude)} rows for {m} queries")
    rows = []
    for items in exclude:
        row = np.unique(np.fromiter((int(i) for i in items), dtype=np.int64, count=len(items)))
        rows.append(row[(row >= 0) & (row < n)])
    return rows


def _empty(m: int, k: int) -> tuple[IntArray, FloatArray]:
    return np.full((m, k), -1, np.int64), np.full((m, k), -np.inf, np.float32)


def _select(scores: FloatArray, k: int) -> tuple[IntArray, FloatArray]:
    """The ``k`` best columns of each row, best first; ``-inf`` columns become ``-1``."""
    n = scores.shape[1]
    if k < n:
        part = np.argpartition(scores, n - k, axis=1)[:, n - k :]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape)
    best = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    indices = np.take_along_axis(part, order, axis=1).astype(np.int64)
    best = np.take_along_axis(best, order, axis=1).astype(np.float32)
    indices[np.isneginf(best)] = -1
    return indices, best


def exact_search(
    vectors: npt.ArrayLike,
    queries: npt.ArrayLike,
    k: int,
    metric: Metric = "ip",
    exclude: Exclude | None = None,
    chunk_elements: int = 1 << 24,
) -> tuple[IntArray, FloatArray]:
    """Brute-force top-``k`` by inner product or cosine: the exact baseline.

    Scores are computed for blocks of queries at a time so that a block's score
    matrix holds at most ``chunk_elements`` floats (64 MiB by default).

    Args:
        vectors: ``(n, d)`` item embeddings; row ``i`` is item ``i``.
        queries: ``(m, d)`` query (user) embeddings, or one ``(d,)`` vector.
        k: neighbours wanted per query (at least 1); capped at ``n``.
        metric: ``"ip"`` or ``"cosine"``.
        exclude: items to leave out per query (see :data:`Exclude`).
        chunk_elements: memory bound of one block of scores.

    Returns:
        ``(indices, scores)`` of shape ``(m, min(k, n))``, best first: ``int64`` item
        indices and ``float32`` scores. Slots left empty because a query excludes
        nearly everything hold index ``-1`` and score ``-inf``.
    """
    _check_k(k)
    metric = _check_metric(metric)
    items = _as_matrix("vectors", vectors)
    q = _as_matrix("queries", queries, items.shape[1])
    n, m = items.shape[0], q.shape[0]
    k = min(k, n)
    excluded = _exclusions(exclude, m, n)
    if k == 0 or m == 0:
        return _empty(m, k)
    if metric == "cosine":
        items, q = _normalise(items), _normalise(q)
    rows = max(1, chunk_elements // n)
    out_idx, out_scores = _empty(m, k)
    for start in range(0, m, rows):
        stop = min(m, start + rows)
        scores = q[start:stop] @ items.T
        if excluded is not None:
            for row in range(start, stop):
                scores[row - start, excluded[row]] = -np.inf
        out_idx[start:stop], out_scores[start:stop] = _select(scores, k)
    return out_idx, out_scores


def insertion_order(vectors: FloatArray, metric: Metric) -> IntArray:
    """The order in which to insert ``vectors`` into an HNSW graph.

    For inner product, shortest vectors first: inserted in random order, long
    (popular) vectors become hubs early and the neighbour-selection heuristic prunes
    the links between shorter ones, leaving them hard to reach (recall@100 about
    0.7 on the benchmark at any ``ef_search``). Cosine ignores norms: keep the order.
    """
    if metric == "ip":
        return np.argsort(np.einsum("ij,ij->i", vectors, vectors), kind="stable").astype(np.int64)
    return np.arange(len(vectors), dtype=np.int64)


class AnnIndex:
    """An HNSW index over ``n`` item vectors answering top-``k`` queries.

    Build with :meth:`build`, restore with :meth:`from_arrays`. Searching is safe
    from several threads at once; :attr:`ef_search` should be set before serving.

    Attributes:
        metric: ``"ip"`` or ``"cosine"``.
        dim: dimension of the vectors.
        params: ``M``, ``ef_construction`` (fixed at build) and ``ef_search``.
        threads: default number of threads for searches (0 = all cores).
    """

    def __init__(
        self,
        index: Any,
        n: int,
        dim: int,
        metric: Metric,
        params: dict[str, int],
        threads: int = 0,
    ) -> None:
        """Wrap an hnswlib index; use :meth:`build` or :meth:`from_arrays` instead."""
        self._index = index
        self._n = n
        self.dim = dim
        self.metric = metric
        self.params = dict(params)
        self.threads = threads
        self._stored: FloatArray | None = None
        if index is not None:
            index.set_ef(self.params["ef_search"])

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"AnnIndex(n={self._n}, dim={self.dim}, metric={self.metric!r}, {params})"

    @property
    def ef_search(self) -> int:
        """Candidate list size of a search: higher is slower and more accurate."""
        return self.params["ef_search"]

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        if value < 1:
            raise ValidationError(f"ef_search must be at least 1, got {value}")
        self.params["ef_search"] = int(value)
        if self._index is not None:
            self._index.set_ef(int(value))

    @classmethod
    def build(
        cls,
        vectors: npt.ArrayLike,
        metric: Metric = "ip",
        *,
        M: int = DEFAULT_PARAMS["M"],
        ef_construction: int = DEFAULT_PARAMS["ef_construction"],
        ef_search: int = DEFAULT_PARAMS["ef_search"],
        threads: int = 0,
        seed: int = 0,
        progress: Callable[[float], None] | None = None,
        chunk_size: int = 20_000,
    ) -> AnnIndex:
        """Index ``vectors``; row ``i`` becomes item ``i``.

        Args:
            vectors: ``(n, d)`` float embeddings (``n`` may be 0).
            metric: ``"ip"`` (inner product) or ``"cosine"``.
            M: graph degree; more is more accurate, larger and slower to build.
            ef_construction: candidate list size while inserting.
            ef_search: candidate list size while searching (changeable later).
            threads: threads for building and, by default, searching; 0 = all cores.
            seed: seed of the level assignment, for reproducible graphs.
            progress: called with the fraction inserted, from 0.0 to 1.0.
            chunk_size: vectors inserted between two progress calls.

        Returns:
            The index, ready to :meth:`search`.
        """
        metric = _check_metric(metric)
        for name, value in (("M", M), ("ef_construction", ef_construction)):
            if value < 2:
                raise ValidationError(f"{name} must be at least 2, got {value}")
        if ef_search < 1:
            raise ValidationError(f"ef_search must be at least 1, got {ef_search}")
        data = _as_matrix("vectors", vectors)
        n, dim = data.shape
        params = {"M": M, "ef_construction": ef_construction, "ef_search": ef_search}
        report = progress or (lambda _fraction: None)
        report(0.0)
        if n == 0:
            report(1.0)
            return cls(None, 0, dim, metric, params, threads)
        index = _hnswlib().Index(space=_SPACES[metric], dim=dim)
        index.init_index(max_elements=n, M=M, ef_construction=ef_construction, random_seed=seed)
        num_threads = threads if threads > 0 else -1
        order = insertion_order(data, metric)
        for start in range(0, n, max(1, chunk_size)):
            rows = order[start : start + max(1, chunk_size)]
            index.add_items(data[rows], rows, num_threads=num_threads)
            report(min(n, start + len(rows)) / n)
        return cls(index, n, dim, metric, params, threads)

    def search(
        self,
        queries: npt.ArrayLike,
        k: int,
        exclude: Exclude | None = None,
        *,
        threads: int | None = None,
    ) -> tuple[IntArray, FloatArray]:
        """Approximate top-``k`` items for each query, best first.

        Excluded items are removed by asking the graph for ``k`` plus the number
        excluded (queries are grouped by that size), so exclusion never lowers the
        number of results below ``k`` while enough items remain.

        Args:
            queries: ``(m, d)`` query embeddings, or one ``(d,)`` vector.
            k: neighbours wanted per query (at least 1); capped at ``len(self)``.
            exclude: items to leave out per query (see :data:`Exclude`).
            threads: threads for this call; default :attr:`threads` (0 = all cores).

        Returns:
            ``(indices, scores)`` of shape ``(m, min(k, n))`` as in
            :func:`exact_search`: ``int64`` item indices, ``float32`` inner products
            (cosines for ``metric="cosine"``), ``-1`` / ``-inf`` in empty slots.
        """
        _check_k(k)
        q = _as_matrix("queries", queries, self.dim)
        m, n = q.shape[0], self._n
        k = min(k, n)
        excluded = _exclusions(exclude, m, n)
        out_idx, out_scores = _empty(m, k)
        if k == 0 or m == 0:
            return out_idx, out_scores
        if excluded is None:
            groups = {k: np.arange(m)}
        else:
            need = np.asarray([k + len(row) for row in excluded])
            # Round up to powers of two so a batch runs as a few large graph searches.
            fetch = np.minimum(n, np.maximum(k, 1 << np.ceil(np.log2(need)).astype(np.int64)))
            groups = {int(f): np.flatnonzero(fetch == f) for f in np.unique(fetch)}
        num_threads = self.threads if threads is None else threads
        for fetch, rows in groups.items():
            idx, scores = self._fetch(q[rows], fetch, num_threads)
            if excluded is None:
                out_idx[rows], out_scores[rows] = idx[:, :k], scores[:, :k]
                continue
            for pos, row in enumerate(rows):
                keep = ~np.isin(idx[pos], excluded[row]) & (idx[pos] >= 0)
                kept_idx, kept_scores = idx[pos][keep][:k], scores[pos][keep][:k]
                out_idx[row, : len(kept_idx)] = kept_idx
                out_scores[row, : len(kept_idx)] = kept_scores
        return out_idx, out_scores

    def _fetch(self, q: FloatArray, fetch: int, threads: int) -> tuple[IntArray, FloatArray]:
        if fetch >= _EXACT_FALLBACK_SHARE * self._n:
            return self._exact(q, fetch)
        try:
            labels, distances = self._index.knn_query(
                q, k=fetch, num_threads=threads if threads > 0 else -1
            )
        except RuntimeError:  # the graph could not return `fetch` items
            return self._exact(q, fetch)
        # hnswlib's ip and cosine distances are 1 - similarity.
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)

    def _exact(self, q: FloatArray, fetch: int) -> tuple[IntArray, FloatArray]:
        if self._stored is None:
            # hnswlib keeps cosine vectors normalised, so these score like the graph.
            self._stored = np.asarray(
                self._index.get_items(np.arange(self._n), return_type="numpy"), np.float32
            )
        queries = _normalise(q) if self.metric == "cosine" else q
        return exact_search(self._stored, queries, fetch, metric="ip")

    # -- persistence -------------------------------------------------------------

    def to_arrays(self, prefix: str = "ann") -> dict[str, npt.NDArray[Any]]:
        """The index as named numpy arrays for an artifact's ``.npz`` (no pickle).

        Args:
            prefix: name prefix, so that several indexes fit in one artifact.

        Returns:
            ``{prefix}.index``: hnswlib's native index bytes as ``uint8``;
            ``{prefix}.meta``: format, n, dim, metric, M, ef_construction, ef_search.
        """
        if self._index is None:
            blob = np.empty(0, np.uint8)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "index.bin"
                self._index.save_index(os.fspath(path))
                blob = np.fromfile(path, dtype=np.uint8)
        meta = [
            _FORMAT,
            self._n,
            self.dim,
            _METRICS.index(self.metric),
            self.params["M"],
            self.params["ef_construction"],
            self.params["ef_search"],
        ]
        return {f"{prefix}.index": blob, f"{prefix}.meta": np.asarray(meta, np.int64)}

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, npt.NDArray[Any]], prefix: str = "ann", threads: int = 0
    ) -> AnnIndex:
        """Restore an index written by :meth:`to_arrays`.

        Args:
            arrays: e.g. :attr:`Artifact.arrays` of a verified artifact.
            prefix: the prefix given to :meth:`to_arrays`.
            threads: default number of search threads (0 = all cores).

        Returns:
            An index answering exactly like the one saved.

        Raises:
            ModelError: the arrays are missing, of an unknown format, or not a
                well-formed index of the size the metadata says (checked before
                hnswlib's loader, which trusts the file, reads them).
        """
        try:
            meta = [int(x) for x in arrays[f"{prefix}.meta"]]
            blob = np.ascontiguousarray(arrays[f"{prefix}.index"], dtype=np.uint8)
        except KeyError as exc:
            raise ModelError(f"no ANN index under prefix {prefix!r} ({exc} missing)") from None
        if len(meta) != 7 or meta[0] != _FORMAT or not 0 <= meta[3] < len(_METRICS):
            raise ModelError(f"ANN index {prefix!r}: unsupported format {meta[:1]}")
        _, n, dim, metric_code, M, ef_construction, ef_search = meta
        metric = _METRICS[metric_code]
        params = {"M": M, "ef_construction": ef_construction, "ef_search": ef_search}
        if n == 0:
            return cls(None, 0, dim, metric, params, threads)
        check_index_bytes(blob, n, dim, M)
        index = _hnswlib().Index(space=_SPACES[metric], dim=dim)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "index.bin"
            blob.tofile(path)
            index.load_index(os.fspath(path), max_elements=n)
        if index.get_current_count() != n:
            raise ModelError(f"ANN index {prefix!r} holds {index.get_current_count()}, not {n}")
        return cls(index, n, dim, metric, params, threads)
