import numpy as np

from mlrec.core.interactions import Interactions
from mlrec.models import Recommender, SequentialCooccurrence
from tests.unit.models.contract import RecommenderContract


class TestSequential(RecommenderContract):
    def make_model(self) -> Recommender:
        return SequentialCooccurrence(window=5)


def test_sequential_links_only_items_close_in_time() -> None:
    data = Interactions.from_arrays(
        ["u", "u", "u", "v", "v"], ["a", "b", "c", "a", "b"], timestamps=[1, 2, 10, 5, 6]
    )
    model = SequentialCooccurrence(window=1, beta=0.0).fit(data)
    dense = model.weights.toarray()
    a, b, c = (data.items.index(x) for x in "abc")
    assert dense[a, b] == dense[b, a] == 1.0  # two users, /(1 + 1)
    assert dense[a, c] == 0.0


def test_sequential_without_timestamps_scores_zero() -> None:
    data = Interactions.from_arrays(["u", "u", "v"], ["a", "b", "a"])
    model = SequentialCooccurrence().fit(data)
    assert model.weights.nnz == 0
    assert np.all(model.score_users(np.arange(2)) == 0)
