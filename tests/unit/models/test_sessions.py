from pathlib import Path

import numpy as np
import pytest

from mlrec.core.errors import ValidationError
from mlrec.core.interactions import Interactions
from mlrec.models import EASE, Recommender, load_model
from mlrec.models.sessions import has_time, session_matrix
from tests.unit.models.contract import RecommenderContract, demo_split


class TestSessionEASE(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(l2=50.0, session_weight=1.0, session_gap=3600.0)


def _two_sittings() -> Interactions:
    # u rates a, b together and c a day later; v rates the same three in one sitting
    return Interactions.from_arrays(
        ["u", "u", "u", "v", "v", "v", "w", "w"],
        ["a", "b", "c", "a", "b", "c", "b", "c"],
        timestamps=[0, 30, 86_400, 0, 10, 20, 0, 86_400],
    )


def test_session_matrix_cuts_at_gaps_per_user() -> None:
    sessions = session_matrix(_two_sittings(), gap=60).toarray()
    assert sessions.tolist() == [
        [1.0, 1.0, 0.0],  # u: a, b
        [0.0, 0.0, 1.0],  # u: c
        [1.0, 1.0, 1.0],  # v
        [0.0, 1.0, 0.0],  # w: b
        [0.0, 0.0, 1.0],  # w: c
    ]
    assert session_matrix(_two_sittings(), gap=10**6).shape[0] == 3


def test_session_matrix_is_binary_with_repeated_events() -> None:
    data = Interactions.from_arrays(["u", "u", "u"], ["a", "a", "b"], timestamps=[0, 1, 2])
    assert session_matrix(data, gap=60).toarray().tolist() == [[1.0, 1.0]]


def test_has_time() -> None:
    assert has_time(_two_sittings())
    assert not has_time(Interactions.from_arrays(["u", "v"], ["a", "b"]))


def test_session_rows_strengthen_items_rated_in_the_same_sitting() -> None:
    data = _two_sittings()
    a, b, c = (data.items.index(x) for x in "abc")
    plain = EASE(l2=1.0, dropout=0.0).fit(data).weights
    sessions = EASE(l2=1.0, dropout=0.0, session_weight=1.0).fit(data).weights
    # a and b share two sittings, a and c only one: the session rows widen the gap
    assert sessions[a, b] - sessions[a, c] > plain[a, b] - plain[a, c]


def test_session_weight_zero_and_missing_timestamps_give_plain_ease() -> None:
    train = demo_split()[0]
    plain = EASE(l2=100.0).fit(train).weights
    off = EASE(l2=100.0, session_weight=0.0, session_gap=1.0).fit(train).weights
    np.testing.assert_array_equal(off, plain)
    untimed = Interactions.from_arrays(["u", "u", "v", "v"], ["a", "b", "a", "c"])
    np.testing.assert_array_equal(
        EASE(l2=1.0, session_weight=2.0).fit(untimed).weights, EASE(l2=1.0).fit(untimed).weights
    )


def test_session_ease_differs_from_plain_ease_on_timed_data() -> None:
    train = demo_split()[0]
    assert has_time(train)
    plain = EASE(l2=100.0).fit(train).weights
    sessions = EASE(l2=100.0, session_weight=1.0, session_gap=3600.0).fit(train).weights
    assert not np.allclose(plain, sessions)


def test_session_ease_round_trip_keeps_params_and_scores(tmp_path: Path) -> None:
    train = demo_split()[0]
    model = EASE(l2=50.0, session_weight=0.5, session_gap=120.0).fit(train)
    model.save(tmp_path / "ease")
    loaded = load_model(tmp_path / "ease")
    assert loaded.params == model.params
    histories = train.to_csr()[:5]
    np.testing.assert_allclose(
        loaded.score_histories(histories), model.score_histories(histories), atol=1e-6
    )


def test_session_params_are_validated() -> None:
    with pytest.raises(ValidationError):
        EASE(session_weight=-1.0)
    with pytest.raises(ValidationError):
        EASE(session_gap=-1.0)
