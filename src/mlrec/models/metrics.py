"""Top-N ranking metrics: pure functions over ranked lists and relevant sets.

Every per-list function takes ``ranked`` (recommended ids, best first) and
``relevant`` (the held-out ids of that user) and returns a float. Relevance is
binary. Definitions follow Microsoft Recommenders
(``recommenders/evaluation/python_evaluation.py``):

* ``precision@k``  hits in the top ``k`` / ``k`` (always ``k``, even if fewer
  items were recommended or fewer are relevant);
* ``recall@k``     hits in the top ``k`` / ``|relevant|``;
* ``ndcg@k``       ``DCG = Σ 1/log2(rank+1)`` over hits in the top ``k``, divided
  by the ideal DCG of ``min(k, |relevant|)`` hits at ranks ``1..``;
* ``map@k``        ``AP@k = Σ_{hit ranks r ≤ k} precision@r / min(k, |relevant|)``
  (MS Recommenders ``map_at_k``; Spark's ``meanAveragePrecisionAt``). Note that
  ``ranx``'s ``map@k`` divides by ``|relevant|`` instead; the two agree whenever
  ``|relevant| ≤ k``;
* ``hit_rate@k``   1 if any of the top ``k`` is relevant, else 0;
* ``mrr``          ``1 / rank`` of the first relevant item in the top ``k`` (0 if none);
* ``coverage``     distinct recommended items / catalogue size (over all users).

Users with no relevant item are skipped by :func:`ranking_metrics` (as MS
Recommenders does: only users present in the test set count).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mlrec.core.errors import ValidationError
from mlrec.core.interactions import Interactions

if TYPE_CHECKING:
    from mlrec.models.base import Recommender

__all__ = [
    "average_precision_at_k",
    "catalogue_coverage",
    "evaluate",
    "hit_rate_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "reciprocal_rank",
]

METRIC_NAMES = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage")


def _check_k(k: int) -> None:
    if k < 1:
        raise ValidationError(f"k must be at least 1, got {k}")


def _distinct(relevant: Collection[Hashable]) -> Collection[Hashable]:
    """``relevant`` as a set: a user's held-out items listed once per test event count once."""
    return relevant if isinstance(relevant, set | frozenset) else set(relevant)


def _hits(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> list[bool]:
    seen: set[Hashable] = set()
    hits: list[bool] = []
    for item in ranked[:k]:
        # a duplicate in a ranked list never counts twice
        hits.append(item in relevant and item not in seen)
        seen.add(item)
    return hits


def precision_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Fraction of the ``k`` slots that hold a relevant item.

    Example:
        >>> precision_at_k(["a", "b", "c"], {"a", "c", "z"}, k=4)
        0.5
    """
    _check_k(k)
    return sum(_hits(ranked, relevant, k)) / k


def recall_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Fraction of the relevant items found in the top ``k`` (0 if none is relevant).

    Example:
        >>> recall_at_k(["a", "b"], {"a", "c", "d", "e"}, k=2)
        0.25
    """
    _check_k(k)
    relevant = _distinct(relevant)
    if not relevant:
        return 0.0
    return sum(_hits(ranked, relevant, k)) / len(relevant)


def ndcg_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Binary-relevance NDCG with ``log2(rank + 1)`` discounts, IDCG over ``min(k, |rel|)``.

    Example:
        >>> round(ndcg_at_k(["x", "a"], {"a"}, k=2), 6)
        0.63093
    """
    _check_k(k)
    relevant = _distinct(relevant)
    if not relevant:
        return 0.0
    dcg = sum(
        1.0 / math.log2(rank + 2) for rank, hit in enumerate(_hits(ranked, relevant, k)) if hit
    )
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return dcg / ideal


def average_precision_at_k(
    ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int
) -> float:
    """AP@k as in MS Recommenders: ``Σ precision@r`` at hit ranks ``r ≤ k``, / ``min(k, |rel|)``.

    Example:
        >>> average_precision_at_k(["a", "x", "b"], {"a", "b"}, k=3)  # (1/1 + 2/3) / 2
        0.8333333333333333
    """
    _check_k(k)
    relevant = _distinct(relevant)
    if not relevant:
        return 0.0
    total, found = 0.0, 0
    for rank, hit in enumerate(_hits(ranked, relevant, k), start=1):
        if hit:
            found += 1
            total += found / rank
    return total / min(k, len(relevant))


def hit_rate_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """1.0 if at least one of the top ``k`` is relevant, else 0.0."""
    _check_k(k)
    return 1.0 if any(_hits(ranked, relevant, k)) else 0.0


def reciprocal_rank(
    ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int | None = None
) -> float:
    """``1 / rank`` of the first relevant item within the top ``k`` (all if ``None``)."""
    limit = len(ranked) if k is None else k
    _check_k(max(limit, 1))
    for rank, hit in enumerate(_hits(ranked, relevant, limit), start=1):
        if hit:
            return 1.0 / rank
    return 0.0


def catalogue_coverage(ranked_lists: Sequence[Sequence[Hashable]], n_items: int, k: int) -> float:
    """Distinct items appearing in anyone's top ``k``, as a fraction of ``n_items``."""
    _check_k(k)
    if n_items <= 0:
        return 0.0
    distinct: set[Hashable] = set()
    for ranked in ranked_lists:
        distinct.update(ranked[:k])
    return len(distinct) / n_items


def ranking_metrics(
    ranked_lists: Sequence[Sequence[Hashable]],
    relevant_sets: Sequence[Collection[Hashable]],
    k: int = 10,
    n_items: int | None = None,
) -> dict[str, float]:
    """Mean of every metric over users (users with an empty relevant set are skipped).

    Args:
        ranked_lists: one ranked list per user, best first.
        relevant_sets: the matching held-out items.
        k: the cut-off.
        n_items: catalogue size for ``coverage`` (omitted from the result if ``None``).

    Returns:
        ``{"precision", "recall", "ndcg", "map", "hit_rate", "mrr"[, "coverage"], "users"}``.
    """
    _check_k(k)
    if len(ranked_lists) != len(relevant_sets):
        raise ValidationError("ranked_lists and relevant_sets must have the same length")
    pairs = [(r, rel) for r, rel in zip(ranked_lists, relevant_sets, strict=True) if rel]
    sums = dict.fromkeys(("precision", "recall", "ndcg", "map", "hit_rate", "mrr"), 0.0)
    for ranked, relevant in pairs:
        rel = _distinct(relevant)
        sums["precision"] += precision_at_k(ranked, rel, k)
        sums["recall"] += recall_at_k(ranked, rel, k)
        sums["ndcg"] += ndcg_at_k(ranked, rel, k)
        sums["map"] += average_precision_at_k(ranked, rel, k)
        sums["hit_rate"] += hit_rate_at_k(ranked, rel, k)
        sums["mrr"] += reciprocal_rank(ranked, rel, k)
    n = len(pairs)
    result = {name: (value / n if n else 0.0) for name, value in sums.items()}
    if n_items is not None:
        result["coverage"] = catalogue_coverage([r for r, _ in pairs], n_items, k)
    result["users"] = float(n)
    return result


def evaluate(
    model: Recommender, train: Interactions, test: Interactions, k: int = 10
) -> dict[str, float]:
    """Score a fitted model on held-out interactions with full ranking.

    Every user with at least one test interaction who is known to the model (matched
    by external id; unknown test users are skipped) gets a top-``k`` list over the
    whole catalogue, with the items they had in ``train`` removed (the model must
    have been fitted on ``train``). Test items unknown to the model still count as
    relevant (they can never be hit).

    Args:
        model: a fitted :class:`~mlrec.models.base.Recommender`.
        train: the interactions the model was fitted on.
        test: held-out interactions (any id maps; matched by external id).
        k: the cut-off.

    Returns:
        :func:`ranking_metrics` of the test users (``coverage`` included).

    Raises:
        ValidationError: ``k < 1``, or the model was not fitted on ``train``.

    Example:
        >>> evaluate(EASE().fit(train), train, test, k=10)["ndcg"]   # doctest: +SKIP
        0.49...
    """
    _check_k(k)
    if model.user_items.shape != (train.n_users, train.n_items) or (
        model.user_items.nnz != train.to_csr().nnz
    ):
        raise ValidationError("evaluate: the model was not fitted on this training set")
    same_items = model.items is test.items or model.items == test.items
    same_users = model.users is test.users or model.users == test.users
    relevant: dict[int, set[int]] = {}
    test_items = np.asarray(test.item_idx)
    if not same_items:
        # an item the model never saw stays relevant but can never be hit: it gets a
        # negative key of its own, one per external id, so that repeated test events
        # of it count once, like repeated events of a known item
        lookup = np.empty(test.n_items, np.int64)
        for pos, item_id in enumerate(test.items.ids()):
            found = model.items.get(item_id)
            lookup[pos] = -1 - pos if found is None else found
        test_items = lookup[test_items]
    for user, item in zip(test.user_idx.tolist(), test_items.tolist(), strict=True):
        if same_users:
            row = user
        else:
            found_user = model.users.get(test.users.id(user))
            if found_user is None:
                continue
            row = found_user
        relevant.setdefault(row, set()).add(item)
    users = np.fromiter(sorted(relevant), np.int64, len(relevant))
    indices, scores = model.recommend_batch(users, k=k, exclude_seen=True)
    ranked = [
        [int(i) for i, s in zip(row_idx, row_scores, strict=True) if np.isfinite(s)]
        for row_idx, row_scores in zip(indices, scores, strict=True)
    ]
    return ranking_metrics(ranked, [relevant[int(u)] for u in users], k, n_items=model.n_items)
