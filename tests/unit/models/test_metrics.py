"""Metrics: hand-computed cases, then agreement with ranx on random cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlrec.core.errors import ValidationError
from mlrec.core.interactions import Interactions
from mlrec.models import EASE, MostPopular
from mlrec.models.metrics import (
    average_precision_at_k,
    catalogue_coverage,
    evaluate,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    reciprocal_rank,
)

RANKED = ["a", "x", "b", "y", "c"]
RELEVANT = {"a", "b", "c", "d"}


def test_precision_divides_by_k_even_past_the_list() -> None:
    assert precision_at_k(RANKED, RELEVANT, 5) == 3 / 5
    assert precision_at_k(RANKED, RELEVANT, 10) == 3 / 10
    assert precision_at_k(RANKED, RELEVANT, 2) == 1 / 2


def test_recall_divides_by_number_relevant() -> None:
    assert recall_at_k(RANKED, RELEVANT, 5) == 3 / 4
    assert recall_at_k(RANKED, RELEVANT, 1) == 1 / 4
    assert recall_at_k(RANKED, set(), 5) == 0.0


def test_ndcg_uses_log2_discount_and_ideal_over_min_k_relevant() -> None:
    dcg = 1 + 1 / math.log2(4) + 1 / math.log2(6)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5)
    assert ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(RANKED, RELEVANT, 3) == pytest.approx(
        (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    )
    assert ndcg_at_k(["a", "b"], {"a", "b"}, 10) == pytest.approx(1.0)


def test_map_divides_by_min_k_and_relevant() -> None:
    # hits at ranks 1, 3, 5: precisions 1, 2/3, 3/5
    assert average_precision_at_k(RANKED, RELEVANT, 5) == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)
    assert average_precision_at_k(RANKED, RELEVANT, 3) == pytest.approx((1 + 2 / 3) / 3)
    assert average_precision_at_k(["x", "a"], {"a"}, 10) == pytest.approx(0.5)


def test_hit_rate_and_reciprocal_rank() -> None:
    assert hit_rate_at_k(RANKED, RELEVANT, 1) == 1.0
    assert hit_rate_at_k(["x", "y", "a"], RELEVANT, 2) == 0.0
    assert reciprocal_rank(["x", "y", "a"], RELEVANT) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x", "y", "a"], RELEVANT, k=2) == 0.0


def test_duplicates_in_a_ranking_count_once() -> None:
    assert precision_at_k(["a", "a"], {"a"}, 2) == 0.5


def test_an_item_listed_twice_as_relevant_counts_once() -> None:
    # a user's held-out ids read from a test log list a repeated event twice
    assert recall_at_k(["a"], ["a", "a"], 10) == 1.0
    assert ndcg_at_k(["a"], ["a", "a"], 10) == pytest.approx(1.0)
    assert average_precision_at_k(["a"], ["a", "a"], 10) == 1.0
    listed = ["a", "b", "b", "c"]
    assert ndcg_at_k(RANKED, listed, 5) == pytest.approx(ndcg_at_k(RANKED, set(listed), 5))


def test_coverage_counts_distinct_items_in_top_k() -> None:
    assert catalogue_coverage([["a", "b", "z"], ["b", "c"]], n_items=10, k=2) == 0.3


def test_ranking_metrics_skips_users_without_relevant_items() -> None:
    result = ranking_metrics([["a"], ["b"]], [{"a"}, set()], k=1, n_items=4)
    assert result["users"] == 1.0
    assert result["precision"] == 1.0
    assert result["coverage"] == 0.25


def test_bad_k_raises_validation_error() -> None:
    with pytest.raises(ValidationError):
        precision_at_k(RANKED, RELEVANT, 0)


def _random_cases(seed: int, n: int = 60) -> tuple[list[list[str]], list[set[str]]]:
    rng = np.random.default_rng(seed)
    ranked, relevant = [], []
    for _ in range(n):
        ranked.append([f"d{i}" for i in rng.permutation(40)[: rng.integers(1, 20)]])
        relevant.append({f"d{i}" for i in rng.choice(40, size=rng.integers(1, 15), replace=False)})
    return ranked, relevant


@pytest.mark.slow  # ranx JIT-compiles its metrics on first use (tens of seconds)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_agrees_with_ranx(seed: int, k: int) -> None:
    ranx = pytest.importorskip("ranx")
    ranked, relevant = _random_cases(seed)
    qrels = ranx.Qrels({f"q{i:03d}": dict.fromkeys(rel, 1) for i, rel in enumerate(relevant)})
    run = ranx.Run(
        {
            f"q{i:03d}": {doc: float(len(r) - pos) for pos, doc in enumerate(r)}
            for i, r in enumerate(ranked)
        }
    )
    metrics = [
        f"precision@{k}",
        f"recall@{k}",
        f"ndcg@{k}",
        f"map@{k}",
        f"mrr@{k}",
        f"hit_rate@{k}",
    ]
    theirs = ranx.evaluate(qrels, run, metrics, return_mean=False)
    for q, (r, rel) in enumerate(zip(ranked, relevant, strict=True)):
        assert precision_at_k(r, rel, k) == pytest.approx(theirs[f"precision@{k}"][q])
        assert recall_at_k(r, rel, k) == pytest.approx(theirs[f"recall@{k}"][q])
        assert ndcg_at_k(r, rel, k) == pytest.approx(theirs[f"ndcg@{k}"][q])
        assert reciprocal_rank(r, rel, k) == pytest.approx(theirs[f"mrr@{k}"][q])
        assert hit_rate_at_k(r, rel, k) == pytest.approx(theirs[f"hit_rate@{k}"][q])
        # ranx's AP@k divides by |rel|; ours (MS Recommenders) by min(k, |rel|)
        assert average_precision_at_k(r, rel, k) * min(k, len(rel)) == pytest.approx(
            theirs[f"map@{k}"][q] * len(rel)
        )


def _toy() -> tuple[Interactions, Interactions]:
    users = ["u1", "u1", "u1", "u2", "u2", "u3", "u3", "u3"]
    items = ["a", "b", "c", "a", "b", "b", "c", "d"]
    data = Interactions.from_arrays(users, items)
    test_mask = np.zeros(len(data), bool)
    test_mask[[2, 7]] = True  # u1 -> c, u3 -> d held out
    return data.subset(~test_mask), data.subset(test_mask)


def test_evaluate_uses_only_test_users_and_excludes_seen_items() -> None:
    train, test = _toy()
    model = MostPopular().fit(train)
    result = evaluate(model, train, test, k=1)
    # popularity in train: b=3, a=2, c=1, d=0. u1 saw a,b -> c (hit); u3 saw b,c -> a (miss)
    assert result["users"] == 2.0
    assert result["precision"] == 0.5
    assert result["hit_rate"] == 0.5


def test_evaluate_refuses_a_model_fitted_elsewhere() -> None:
    train, test = _toy()
    model = EASE().fit(test)
    with pytest.raises(ValidationError):
        evaluate(model, train, test)


@pytest.mark.parametrize(
    "test_items",
    [["c", "new"], ["c", "c", "new"], ["c", "new", "new"]],
    ids=["once", "known_twice", "unknown_twice"],
)
def test_evaluate_counts_a_repeated_test_item_once_known_or_not(test_items: list[str]) -> None:
    train = Interactions.from_arrays(["u1", "u1", "u2", "u2", "u2"], ["a", "b", "a", "b", "c"])
    model = MostPopular().fit(train)
    # u1 has seen a and b; its relevant set is {c, new} however often each appears
    test = Interactions.from_arrays(["u1"] * len(test_items), test_items)
    result = evaluate(model, train, test, k=1)
    assert result["recall"] == 0.5
    assert result["precision"] == 1.0
