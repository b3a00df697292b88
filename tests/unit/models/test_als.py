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


class TestALSWithAnnRetrieval(RecommenderContract):
    """The whole contract again with retrieval through the ANN index (tiny threshold)."""

    def make_model(self) -> Recommender:
        return ALS(factors=16, regularization=1.0, iterations=10, num_threads=1, ann_min_items=1)


def test_ann_retrieval_agrees_with_dense_scoring(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mlrec.models import load_model

    train = demo_split()[0]
    dense = ALS(factors=16, iterations=10, num_threads=1, ann_min_items=0).fit(train)
    ann = ALS(factors=16, iterations=10, num_threads=1, ann_min_items=1).fit(train)
    assert dense.ann is None and ann.ann is not None
    users = np.arange(50, dtype=np.int64)
    exact, _ = dense.recommend_batch(users, k=10)
    approx, _ = ann.recommend_batch(users, k=10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx, strict=True)])
    assert overlap >= 0.95
    seen = ann.user_items[users]
    assert not any(seen[row, item] for row in range(50) for item in approx[row])
    retrieved = ann.retrieve(ann.user_items[users], 10)
    assert retrieved is not None and retrieved[0].shape == (50, 10)
    ann.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert np.array_equal(loaded.recommend_batch(users, k=10)[0], approx)
