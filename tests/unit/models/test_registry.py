from pathlib import Path

import pytest

import mlrec.models as models
from mlrec.core.errors import ModelError, NotFoundError, ValidationError
from mlrec.models import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    EASE,
    ItemKNN,
    create_model,
    load_model,
    parse_params,
)
from tests.unit.models.contract import demo_split


def test_public_api_is_pinned() -> None:
    assert sorted(models.__all__) == sorted(
        [
            "ALGORITHMS", "ALS", "DEFAULT_ALGORITHM", "EASE", "GFCF", "Blend", "ItemFilter",
            "ItemKNN", "MostPopular", "Progress", "RP3beta", "Recommendation", "Recommender",
            "SequentialCooccurrence", "create_model", "evaluate", "load_model", "parse_params",
            "ranking_metrics", "top_k",
        ]
    )  # fmt: skip


def test_registry_names_match_classes() -> None:
    assert DEFAULT_ALGORITHM in ALGORITHMS
    for name, cls in ALGORITHMS.items():
        assert cls.algorithm == name
        assert isinstance(create_model(name), cls)


def test_create_model_unknown_name_raises_not_found() -> None:
    with pytest.raises(NotFoundError):
        create_model("deep-magic")


def test_create_model_unknown_param_raises_validation_error() -> None:
    with pytest.raises(ValidationError):
        create_model("ease", lambda_=3)


def test_parse_params_coerces_to_field_types() -> None:
    params = parse_params(ItemKNN, ["neighbours=50", "shrink=2", "binary=false", "weighting=bm25"])
    assert params == {"neighbours": 50, "shrink": 2.0, "binary": False, "weighting": "bm25"}
    assert isinstance(params["shrink"], float)


@pytest.mark.parametrize("pairs", [["nope=1"], ["l2=abc"], ["binary=maybe"], ["l2"], ["=3"]])
def test_parse_params_rejects_bad_input(pairs: list[str]) -> None:
    with pytest.raises(ValidationError):
        parse_params(EASE, pairs)


def test_parse_params_runs_the_params_validation() -> None:
    with pytest.raises(ValidationError):
        parse_params(ItemKNN, ["neighbours=0"])


def test_load_model_dispatches_on_manifest(tmp_path: Path) -> None:
    model = ItemKNN(neighbours=10).fit(demo_split()[0])
    model.save(tmp_path / "knn")
    assert isinstance(load_model(tmp_path / "knn"), ItemKNN)


def test_load_model_of_a_non_artifact_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        load_model(tmp_path)
