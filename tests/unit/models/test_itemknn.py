import pytest

from mlrec.core.errors import ValidationError
from mlrec.models import ItemKNN, Recommender
from tests.unit.models.contract import RecommenderContract, demo_split


class TestItemKNN(RecommenderContract):
    def make_model(self) -> Recommender:
        return ItemKNN(neighbours=30)


@pytest.mark.parametrize("weighting", ["none", "tfidf", "bm25"])
def test_itemknn_keeps_at_most_neighbours_per_item(weighting: str) -> None:
    model = ItemKNN(neighbours=7, weighting=weighting).fit(demo_split()[0])
    per_target = model.weights.tocsc().getnnz(axis=0)
    assert per_target.max() <= 7
    assert model.weights.diagonal().max() == 0.0


def test_itemknn_rejects_unknown_weighting() -> None:
    with pytest.raises(ValidationError):
        ItemKNN(weighting="idf")
