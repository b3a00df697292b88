from mlrec.models import MostPopular, Recommender
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
