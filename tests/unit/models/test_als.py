import numpy as np

from mlrec.models import ALS, Recommender
from tests.unit.models.contract import RecommenderContract, demo_split


class TestALS(RecommenderContract):
    def make_model(self) -> Recommender:
        return ALS(factors=16, regularization=1.0, iterations=10, num_threads=1)


def test_als_fold_in_matches_implicit_recalculate_user() -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    train = demo_split()[0]
    model = ALS(factors=8, iterations=5, alpha=3.0, num_threads=1).fit(train)
    reference = AlternatingLeastSquares(factors=8, regularization=model.params.regularization)
    reference.alpha = 3.0
    reference.item_factors = model.item_factors
    reference.user_factors = model.user_factors
    rows = model.user_items[:4]
    ours = model.history_embeddings(rows)
    theirs = reference.recalculate_user(np.arange(4), rows)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


def test_als_embeddings_score_like_the_model() -> None:
    model = ALS(factors=8, iterations=3, num_threads=1).fit(demo_split()[0])
    users = np.arange(3, dtype=np.int64)
    expected = model.score_users(users)
    np.testing.assert_allclose(
        model.user_embeddings(users) @ model.embeddings().T, expected, rtol=1e-5
    )
