"""The behaviour every Recommender must have; each algorithm's test module subclasses it.

Modelled on benfred/implicit's ``tests/recommender_base_test.py``: the mixin holds
the tests, a subclass supplies ``make_model`` (and says whether the model is a
collaborative filter that should beat popularity).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from mlrec.core.errors import ArtifactIntegrityError, NotFoundError, ValidationError
from mlrec.core.interactions import Interactions
from mlrec.data import make_demo, random_split_per_user
from mlrec.models import MostPopular, Recommender, load_model
from mlrec.models.metrics import evaluate


@functools.cache
def demo() -> Interactions:
    return make_demo(n_users=300, n_items=120, seed=7)


@functools.cache
def demo_split() -> tuple[Interactions, Interactions]:
    train, test = random_split_per_user(demo(), test_ratio=0.25, seed=42)
    return train, test


class RecommenderContract:
    """Subclasses set ``make_model``."""

    def make_model(self) -> Recommender:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls) -> Recommender:
        return cls().make_model().fit(demo_split()[0])

    def test_recommend_returns_k_unique_unseen_items_sorted_by_score(
        self, fitted: Recommender
    ) -> None:
        train = demo_split()[0]
        user = train.users.id(3)
        recs = fitted.recommend(user, k=10)
        ids = [r.item_id for r in recs]
        assert len(ids) == 10
        assert len(set(ids)) == 10
        seen = set(train.items.ids(train.item_idx[train.user_idx == 3]))
        assert not seen & set(ids)
        scores = [r.score for r in recs]
        assert scores == sorted(scores, reverse=True)

    def test_a_shorter_top_k_is_the_start_of_a_longer_one(self, fitted: Recommender) -> None:
        # ties (popularity counts, zero scores) must not be cut differently for each k
        for user in fitted.users.ids()[:20]:
            longer = fitted.recommend(user, k=60)
            for k in (1, 5, 10, 30):
                assert fitted.recommend(user, k=k) == longer[:k]
        item = fitted.items.id(0)
        assert fitted.similar_items(item, k=5) == fitted.similar_items(item, k=60)[:5]

    def test_recommend_includes_seen_items_when_exclude_seen_false(
        self, fitted: Recommender
    ) -> None:
        user = fitted.users.id(0)
        everything = fitted.recommend(user, k=fitted.n_items, exclude_seen=False)
        assert len(everything) == fitted.n_items
        unseen = fitted.recommend(user, k=fitted.n_items)
        assert len(unseen) == fitted.n_items - fitted.user_items[0].nnz

    def test_recommend_respects_allowlist_filter(self, fitted: Recommender) -> None:
        allowed = set(fitted.items.ids()[::3])
        recs = fitted.recommend(fitted.users.id(1), k=5, filter=allowed)
        assert recs
        assert {r.item_id for r in recs} <= allowed

    def test_recommend_respects_predicate_filter(self, fitted: Recommender) -> None:
        recs = fitted.recommend(fitted.users.id(1), k=5, filter=lambda i: i.endswith("1"))
        assert recs
        assert all(r.item_id.endswith("1") for r in recs)

    def test_recommend_from_history_excludes_the_history(self, fitted: Recommender) -> None:
        history = fitted.items.ids()[:5]
        recs = fitted.recommend_from_history(history, k=10)
        assert len(recs) == 10
        assert not set(history) & {r.item_id for r in recs}

    def test_recommend_from_history_of_known_user_matches_recommend_ranking(
        self, fitted: Recommender
    ) -> None:
        # models with user factors fold the history in, so only the item sets overlap
        user = 5
        history = fitted.items.ids(fitted.user_items[user].indices)
        from_history = {r.item_id for r in fitted.recommend_from_history(history, k=10)}
        direct = {r.item_id for r in fitted.recommend(fitted.users.id(user), k=10)}
        assert len(from_history & direct) >= 3

    def test_recommend_unknown_user_raises_not_found(self, fitted: Recommender) -> None:
        with pytest.raises(NotFoundError):
            fitted.recommend("nobody-by-this-name")

    def test_similar_items_excludes_the_item_itself(self, fitted: Recommender) -> None:
        item = fitted.items.id(0)
        similar = fitted.similar_items(item, k=5)
        assert len(similar) == 5
        assert item not in {r.item_id for r in similar}

    def test_save_load_round_trip_gives_identical_recommendations(
        self, fitted: Recommender, tmp_path: Path
    ) -> None:
        sha = fitted.save(tmp_path / "m")
        loaded = load_model(tmp_path / "m", expected_sha256=sha)
        assert type(loaded) is type(fitted)
        assert loaded.get_params() == fitted.get_params()
        users = np.arange(20, dtype=np.int64)
        a_idx, a_scores = fitted.recommend_batch(users, k=10)
        b_idx, b_scores = loaded.recommend_batch(users, k=10)
        np.testing.assert_array_equal(a_idx, b_idx)
        np.testing.assert_allclose(a_scores, b_scores, rtol=1e-6)
        history = fitted.items.ids()[:4]
        assert fitted.recommend_from_history(history) == loaded.recommend_from_history(history)

    def test_load_tampered_arrays_raises_integrity_error(
        self, fitted: Recommender, tmp_path: Path
    ) -> None:
        fitted.save(tmp_path / "m")
        arrays = tmp_path / "m" / "arrays.npz"
        data = bytearray(arrays.read_bytes())
        data[len(data) // 2] ^= 0xFF
        arrays.write_bytes(bytes(data))
        with pytest.raises(ArtifactIntegrityError):
            load_model(tmp_path / "m")
        manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
        assert manifest["algorithm"] == fitted.algorithm

    def test_unknown_param_raises_validation_error(self) -> None:
        with pytest.raises(ValidationError):
            type(self.make_model())(no_such_param=1)

    def test_beats_most_popular_on_structured_data(self, fitted: Recommender) -> None:
        """Personalised models must beat popularity (MostPopular overrides this test)."""
        train, test = demo_split()
        ours = evaluate(fitted, train, test, k=10)["ndcg"]
        popular = evaluate(MostPopular().fit(train), train, test, k=10)["ndcg"]
        assert ours > popular * 1.05
