"""The model-name rule and the ``name[:version]`` references people type."""

from __future__ import annotations

import pytest

from mlrec.core.errors import NotFoundError, ValidationError
from mlrec.models.registry import (
    MAX_MODEL_VERSION,
    check_model_name,
    model_name_problem,
    parse_model_ref,
)


@pytest.mark.parametrize("name", ["default", "movies-ease", "m_1.2", "0", "Z" * 128])
def test_names_of_letters_digits_dot_underscore_dash_are_allowed(name: str) -> None:
    assert model_name_problem(name) is None
    check_model_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "a:b", "x[/]", "[bold]x", "a b", "a/b", ".hidden", "-x", "ü", "a\n", "x" * 129],
)
def test_other_names_are_refused_naming_the_allowed_characters(name: str) -> None:
    problem = model_name_problem(name)
    assert problem is not None and "letters, digits, '.', '_' and '-'" in problem
    with pytest.raises(ValidationError):
        check_model_name(name)


def test_a_ref_is_a_name_with_an_optional_version() -> None:
    assert parse_model_ref("movies") == ("movies", None)
    assert parse_model_ref("movies:3") == ("movies", 3)
    assert parse_model_ref(f"movies:{MAX_MODEL_VERSION}") == ("movies", MAX_MODEL_VERSION)


def test_the_version_follows_the_last_colon() -> None:
    # names with ':' are refused now, but one registered before the rule stays reachable
    assert parse_model_ref("a:b:1") == ("a:b", 1)


@pytest.mark.parametrize(
    "ref", ["movies:", "movies:x", "movies:-1", "movies:1.0", "movies:\u0661", ":1"]
)
def test_a_malformed_ref_is_a_validation_error(ref: str) -> None:
    with pytest.raises(ValidationError, match="bad model reference"):
        parse_model_ref(ref)


@pytest.mark.parametrize("version", ["0", str(MAX_MODEL_VERSION + 1), "99999999999999999999"])
def test_a_version_outside_what_a_registry_holds_is_not_found(version: str) -> None:
    with pytest.raises(NotFoundError, match=f"no model version 'movies:{int(version)}'"):
        parse_model_ref(f"movies:{version}")
