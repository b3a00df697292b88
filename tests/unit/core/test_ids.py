import numpy as np
import pytest
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from mlrec.core import IdMap, NotFoundError
from mlrec.core.ids import entity_id_problem
from mlrec.events.schemas import EntityId


def test_idmap_assigns_indices_in_first_seen_order() -> None:
    ids = IdMap.from_ids(["u7", "u3", "u7", "u1"])
    assert len(ids) == 3
    assert [ids.index(x) for x in ("u7", "u3", "u1")] == [0, 1, 2]
    assert ids.ids() == ["u7", "u3", "u1"]
    assert ids.ids([2, 0]) == ["u1", "u7"]


def test_idmap_unknown_id_raises_not_found_naming_it() -> None:
    with pytest.raises(NotFoundError, match="'nobody'"):
        IdMap(["a"]).index("nobody")
    assert IdMap(["a"]).get("nobody") is None


def test_idmap_vectorised_indices_and_equality() -> None:
    ids = IdMap(["a", "b", "c"])
    assert np.array_equal(ids.indices(["c", "a"]), np.array([2, 0]))
    assert ids == IdMap(["a", "b", "c"])
    assert ids != IdMap(["b", "a", "c"])
    assert "b" in ids and "z" not in ids


@pytest.mark.parametrize(
    "entity_id",
    [
        "a b",
        "tab\there",
        "nbsp\u00a0id",
        "ideographic\u3000space",
        "next\u0085line",
        "zero\u200bwidth",
        "line\u2028sep",
        "bom\ufeff",
    ],
)
def test_ids_with_whitespace_control_or_invisible_characters_are_refused(entity_id: str) -> None:
    assert entity_id_problem(entity_id) is not None
    with pytest.raises(PydanticValidationError):
        TypeAdapter(EntityId).validate_python(entity_id)


@pytest.mark.parametrize("entity_id", ["u42", "用户-7", "café", "👩\u200d💻", "ن\u200cا"])
def test_ids_in_any_script_with_joiners_are_accepted(entity_id: str) -> None:
    assert entity_id_problem(entity_id) is None
    assert TypeAdapter(EntityId).validate_python(entity_id) == entity_id
