import numpy as np

from mlrec.core.interactions import Interactions
from mlrec.models import MostPopular, Recommender, top_k
from tests.unit.models.contract import RecommenderContract


class TestMostPopular(RecommenderContract):
    def make_model(self) -> Recommender:
        return MostPopular()

    def test_beats_most_popular_on_structured_data(self, fitted: Recommender) -> None:
        # popularity itself: every user gets the same ranking, most-interacted first
        users = fitted.users.ids()[:2]
        first, second = (fitted.recommend(u, k=50, exclude_seen=False) for u in users)
        assert [r.item_id for r in first] == [r.item_id for r in second]
        scores = [r.score for r in first]
        assert scores == sorted(scores, reverse=True)


def test_tied_counts_are_cut_the_same_way_for_every_k() -> None:
    # 3000 items seen once each: argpartition kept other tied items for each k
    items = [f"i{n:04d}" for n in range(3000)]
    model = MostPopular().fit(Interactions.from_arrays([f"u{n % 7}" for n in range(3000)], items))
    longer = [r.item_id for r in model.recommend("u0", k=500)]
    assert longer[:5] == ["i0001", "i0002", "i0003", "i0004", "i0005"]  # ties by item order
    for k in (1, 10, 50, 200):
        assert [r.item_id for r in model.recommend("u0", k=k)] == longer[:k]
    indices, _ = top_k(np.zeros((2, 3000), np.float32), 20)
    np.testing.assert_array_equal(indices, np.tile(np.arange(20), (2, 1)))
