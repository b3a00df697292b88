from pathlib import Path

import pytest

from mlrec.core.errors import ValidationError
from mlrec.models import EASE, Blend, Recommender
from mlrec.models.blend import COMPONENT_PARAMS
from tests.unit.models.contract import RecommenderContract, demo_split


class TestBlend(RecommenderContract):
    def make_model(self) -> Recommender:
        return Blend(itemknn=0.5, rp3beta=0.0, sequential=0.25, als=0.5)


def test_blend_rejects_all_zero_weights() -> None:
    with pytest.raises(ValidationError):
        Blend(ease=0, rp3beta=0, itemknn=0, sequential=0, als=0, gfcf=0)


def test_blend_reweight_shares_components_and_rejects_unfitted_ones() -> None:
    model = Blend(rp3beta=0.0, itemknn=1.0, sequential=0.0, als=0.0, gfcf=0.0).fit(demo_split()[0])
    only_knn = model.reweight(ease=0.0)
    assert only_knn.components["itemknn"] is model.components["itemknn"]
    with pytest.raises(ValidationError):
        model.reweight(als=1.0)


def test_blend_components_use_component_params_after_a_round_trip(tmp_path: Path) -> None:
    model = Blend(rp3beta=0.0, itemknn=0.0, sequential=0.0, als=0.0, gfcf=0.0).fit(demo_split()[0])
    assert model.components["ease"].params == EASE(**COMPONENT_PARAMS["ease"]).params
    model.save(tmp_path / "blend")
    loaded = Blend.load(tmp_path / "blend")
    assert loaded.components["ease"].params == model.components["ease"].params
