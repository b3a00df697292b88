from mlrec.models import Recommender, RP3beta
from tests.unit.models.contract import RecommenderContract, demo_split


class TestRP3beta(RecommenderContract):
    def make_model(self) -> Recommender:
        return RP3beta(neighbours=40)


def test_rp3beta_keeps_at_most_neighbours_per_item() -> None:
    model = RP3beta(neighbours=5).fit(demo_split()[0])
    assert model.weights.getnnz(axis=1).max() <= 5
    assert model.weights.diagonal().max() == 0.0
