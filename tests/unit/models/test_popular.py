from mlrec.models import MostPopular, Recommender
from tests.unit.models.contract import RecommenderContract


class TestMostPopular(RecommenderContract):
    beats_popularity = False

    def make_model(self) -> Recommender:
        return MostPopular()
