import numpy as np
import pytest
import scipy.sparse as sp

from mlrec.core.errors import ModelError, ValidationError
from mlrec.core.interactions import Interactions
from mlrec.models import EASE, Recommender
from mlrec.models.ease import rank_within_rows
from tests.unit.models.contract import RecommenderContract, demo_split


class TestEASE(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(l2=50.0)


class TestPlainEASE(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(l2=50.0, dropout=0.0, binary=True)


def test_rank_within_rows_is_percentile_with_shared_ties() -> None:
    matrix = sp.csr_matrix(np.array([[5.0, 1.0, 0.0, 3.0], [2.0, 0.0, 2.0, 0.0]], np.float32))
    ranked = rank_within_rows(matrix).toarray()
    np.testing.assert_allclose(ranked[0], [0.5 + 2.5 / 3, 0.5 + 0.5 / 3, 0.0, 0.5 + 1.5 / 3])
    np.testing.assert_allclose(ranked[1], [1.0, 0.0, 1.0, 0.0])


def test_ease_dropout_zero_binary_matches_closed_form() -> None:
    train = demo_split()[0]
    model = EASE(l2=10.0, dropout=0.0, binary=True).fit(train)
    x = train.to_csr(binary=True).toarray().astype(np.float64)
    precision = np.linalg.inv(x.T @ x + 10.0 * np.eye(x.shape[1]))
    expected = precision / -np.diag(precision)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.weights, expected, atol=1e-4)


def test_ease_scores_do_not_depend_on_the_scale_of_weights() -> None:
    train = demo_split()[0]
    model = EASE(binary=False, rank_weights=False).fit(train)
    history = sp.csr_matrix(train.to_csr()[:5])
    scaled = history.copy()
    scaled.data *= 7.0
    np.testing.assert_allclose(
        model.score_histories(scaled), 7.0 * model.score_histories(history), rtol=1e-4, atol=1e-5
    )


def test_binary_ease_scores_are_additive_over_the_items_of_a_history() -> None:
    train = demo_split()[0]
    model = EASE().fit(train)
    history = sp.csr_matrix(train.to_csr()[:6])  # weighted: binary EASE ignores the weights
    weights = model.additive_weights
    assert weights is not None
    np.testing.assert_allclose(
        model.score_histories(history),
        (history != 0).astype(np.float32) @ weights,
        rtol=1e-5,
        atol=1e-6,
    )
    assert EASE(binary=False).fit(train).additive_weights is None


@pytest.mark.parametrize("params", [{"dropout": 1.0}, {"dropout": -0.1}, {"l2": -1.0}])
def test_ease_rejects_bad_params(params: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        EASE(**params)


@pytest.mark.parametrize(
    ("items", "dropout"),
    [
        (["a", "b", "a", "c", "c", "b", "d"], 0.0),  # more items than users: singular Gram
        (["a", "b", "a", "b", "c", "c", "c"], 0.5),  # "d" is in the id map, seen by no one
    ],
)
def test_ease_without_l2_on_a_singular_gram_is_a_model_error(
    items: list[str], dropout: float
) -> None:
    # scipy 1.17's in-place inverse of a singular symmetric matrix crashed the process
    users = ["u", "u", "v", "v", "w", "w", "w", "x"]
    events = Interactions.from_arrays(users, [*items, "d"])
    train = events.subset(np.arange(7))  # "d" and "x" stay in the id maps
    with pytest.raises(ModelError, match="l2 > 0"):
        EASE(l2=0.0, dropout=dropout).fit(train)
