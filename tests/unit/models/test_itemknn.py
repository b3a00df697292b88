from pathlib import Path

import pytest

from mlrec.core.errors import ModelError, ValidationError
from mlrec.models import ItemKNN, Recommender, load_model
from mlrec.models.artifacts import read_artifact
from tests.unit.models.contract import RecommenderContract, demo_split
from tests.unit.models.legacy_artifacts import save_format_1, similarity_prefix


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


def test_itemknn_loads_an_artifact_whose_matrix_is_named_similarity(tmp_path: Path) -> None:
    # mlrec up to commit 7552bfb (artifact format 1) saved ItemKNN's matrix as similarity.*
    model = ItemKNN(neighbours=20).fit(demo_split()[0])
    save_format_1(model, tmp_path / "old", rename=similarity_prefix)
    assert "similarity.shape" in read_artifact(tmp_path / "old").arrays

    loaded = load_model(tmp_path / "old")

    assert isinstance(loaded, ItemKNN)
    assert (loaded.weights != model.weights).nnz == 0
    user = model.users.id(5)
    assert loaded.recommend(user, k=10) == model.recommend(user, k=10)


def test_itemknn_artifact_without_its_matrix_is_refused_with_a_model_error(
    tmp_path: Path,
) -> None:
    model = ItemKNN(neighbours=20).fit(demo_split()[0])
    save_format_1(model, tmp_path / "odd", rename=lambda name: name.replace("weights.", "w."))
    with pytest.raises(ModelError, match=r"weights\.data"):
        load_model(tmp_path / "odd")
