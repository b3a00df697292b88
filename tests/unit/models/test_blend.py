from pathlib import Path

import pytest

from mlrec.core.errors import ValidationError
from mlrec.models import EASE, Blend, Recommender, load_model
from mlrec.models.blend import COMPONENT_PARAMS
from tests.unit.models.contract import RecommenderContract, demo_split
from tests.unit.models.legacy_artifacts import save_format_1, similarity_prefix


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


def test_blend_loads_an_artifact_of_an_older_mlrec_without_gfcf_and_with_similarity(
    tmp_path: Path,
) -> None:
    # mlrec up to commit 7552bfb: no gfcf weight in the params, ItemKNN's matrix named
    # similarity.*; today's default gfcf weight (0.25) must not make loading look for it
    model = Blend(ease=1.0, rp3beta=0.0, itemknn=0.5, sequential=0.0, als=0.0, gfcf=0.0)
    model.fit(demo_split()[0])
    save_format_1(model, tmp_path / "old", rename=similarity_prefix, drop_params=("gfcf",))

    loaded = load_model(tmp_path / "old")

    assert isinstance(loaded, Blend)
    assert loaded.params.gfcf == 0.0
    assert sorted(loaded.components) == ["ease", "itemknn"]
    user = model.users.id(3)
    assert loaded.recommend(user, k=10) == model.recommend(user, k=10)
