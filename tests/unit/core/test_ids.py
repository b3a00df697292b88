import numpy as np
import pytest

from mlrec.core import IdMap, NotFoundError


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
