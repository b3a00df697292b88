from mlrec.models import EASE, Recommender
from tests.unit.models.contract import RecommenderContract


class TestEASE(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(l2=50.0)
