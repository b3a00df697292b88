import math
from typing import Any

import numpy as np
import pytest

from mlrec.core.errors import ModelError, ValidationError
from mlrec.core.interactions import Interactions
from mlrec.models import ALS, Recommender
from mlrec.models.als import ALSParams
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


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"regularization": math.nan}, "regularization"),
        ({"regularization": -1.0}, "regularization"),
        ({"alpha": math.inf}, "alpha"),
        ({"alpha": 0.0}, "alpha"),
        ({"factors": 10**20}, "factors"),
    ],
)
def test_als_refuses_bad_params_up_front_naming_them(params: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=f"als: {named} must be"):
        ALS(**params)
    with pytest.raises(ValidationError, match=f"als: {named} must be"):
        ALSParams(**params)


def _with_weights(weights: list[float]) -> Interactions:
    return Interactions.from_arrays(
        ["u1", "u1", "u2", "u2", "u3"], ["i1", "i2", "i1", "i3", "i2"], weights=weights
    )


def test_als_refuses_weights_too_large_to_train_on_when_not_binary() -> None:
    # 1e30 is a finite float32, but confidence alpha x 1e30 overflows implicit into NaN
    data = _with_weights([1e30, 1, 2, 1, 1])
    with pytest.raises(ValidationError, match=r"binary=false.*alpha"):
        ALS(binary=False, num_threads=1).fit(data)
    ALS(binary=True, factors=2, iterations=2, num_threads=1).fit(data)  # 0/1: fine


def test_als_turns_an_implicit_fit_error_into_a_model_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from implicit.recommender_base import ModelFitError

    import mlrec.models.als as als_module

    real, limits, fit_error = als_module._import_implicit()

    class Diverging(real):  # type: ignore[misc, valid-type]
        def fit(self, *args: Any, **kwargs: Any) -> None:
            raise ModelFitError("NaN encountered in factors")

    monkeypatch.setattr(als_module, "_import_implicit", lambda: (Diverging, limits, fit_error))
    with pytest.raises(ModelError, match=r"als: training failed.*NaN encountered"):
        ALS(factors=2, iterations=2, num_threads=1).fit(_with_weights([1, 1, 1, 1, 1]))
