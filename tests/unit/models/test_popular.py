from tests.unit.models.contract import RecommenderContract

from mlrec.models import MostPopular, Recommender


class TestMostPopular(RecommenderContract):
    beats_popularity = False

    def make_model(self) -> Recommender:
        return MostPopular()
