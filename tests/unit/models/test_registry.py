import dataclasses
import math
import typing
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


def test_a_parameter_given_to_an_algorithm_without_any_says_it_takes_none() -> None:
    with pytest.raises(ValidationError, match="most_popular: unknown parameter 'zz'; it takes no"):
        parse_params(ALGORITHMS["most_popular"], ["zz=1"])
    with pytest.raises(ValidationError, match="it takes no parameters"):
        create_model("most_popular", zz=1)


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


def _float_fields(name: str) -> list[str]:
    params = ALGORITHMS[name].Params
    hints = typing.get_type_hints(params)
    return [f.name for f in dataclasses.fields(params) if hints[f.name] is float]


FLOAT_PARAMS = [(name, field) for name in sorted(ALGORITHMS) for field in _float_fields(name)]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(("name", "field"), FLOAT_PARAMS)
def test_create_model_refuses_non_finite_float_params(name: str, field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=f"{name}: {field} must be a finite number"):
        create_model(name, **{field: value})


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "1e999"])
@pytest.mark.parametrize(
    ("name", "field"),
    [("ease", "l2"), ("rp3beta", "alpha"), ("rp3beta", "beta"), ("itemknn", "shrink"),
     ("sequential", "beta"), ("gfcf", "alpha"), ("als", "regularization"), ("blend", "als")],
)  # fmt: skip
def test_parse_params_refuses_non_finite_numbers(name: str, field: str, text: str) -> None:
    with pytest.raises(ValidationError, match=f"{name}: {field} must be a finite number"):
        parse_params(ALGORITHMS[name], [f"{field}={text}"])


def test_float_params_exist_for_every_algorithm_with_numbers() -> None:
    # the non-finite checks above are only as good as this list
    assert {name for name, _ in FLOAT_PARAMS} >= {
        "ease", "rp3beta", "itemknn", "sequential", "gfcf", "als", "blend"
    }  # fmt: skip
