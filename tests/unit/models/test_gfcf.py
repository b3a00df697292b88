from pathlib import Path

import numpy as np
import pytest

from mlrec.core.errors import ValidationError
from mlrec.models import GFCF, Recommender, load_model
from mlrec.models import gfcf as gfcf_module
from tests.unit.models.contract import RecommenderContract, demo_split


class TestGFCF(RecommenderContract):
    def make_model(self) -> Recommender:
        return GFCF(factors=16)


def test_gfcf_factorised_scores_match_the_dense_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    train = demo_split()[0]
    dense = GFCF(factors=8, alpha=0.5).fit(train)
    assert dense.dense is not None
    monkeypatch.setattr(gfcf_module, "DENSE_ITEMS", 0)
    factorised = GFCF(factors=8, alpha=0.5).fit(train)
    assert factorised.dense is None
    histories = train.to_csr()[:20]
    np.testing.assert_allclose(
        factorised.score_histories(histories), dense.score_histories(histories), atol=1e-4
    )


def test_gfcf_round_trip_keeps_scores(tmp_path: Path) -> None:
    train = demo_split()[0]
    model = GFCF(factors=8).fit(train)
    model.save(tmp_path / "gfcf")
    loaded = load_model(tmp_path / "gfcf")
    histories = train.to_csr()[:5]
    np.testing.assert_allclose(
        loaded.score_histories(histories), model.score_histories(histories), atol=1e-5
    )


def test_gfcf_alpha_zero_is_the_linear_filter_only() -> None:
    model = GFCF(alpha=0.0).fit(demo_split()[0])
    assert model.left.shape[0] == 0


def test_gfcf_rejects_bad_params() -> None:
    with pytest.raises(ValidationError):
        GFCF(factors=0)
    with pytest.raises(ValidationError):
        GFCF(alpha=-1.0)
