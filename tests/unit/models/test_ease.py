from tests.unit.models.contract import RecommenderContract

from mlrec.models import EASE, Recommender


class TestEASE(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(l2=50.0)
