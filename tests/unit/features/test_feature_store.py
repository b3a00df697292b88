from typing import Any

import pytest

from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.core.clock import ManualClock
from mlrec.core.errors import NotFoundError, ValidationError
from mlrec.features.definitions import Feature, FeatureView, ValueType
from mlrec.features.store import MAX_BATCH_ENTITIES, FeatureStore

PROFILE = FeatureView(
    name="user_profile",
    entity="user",
    features=(
        Feature("age", ValueType.FLOAT, default=-1.0),
        Feature("visits", ValueType.INT, default=0),
        Feature("country", ValueType.STRING),
        Feature("embedding", ValueType.FLOAT_LIST),
        Feature("tags", ValueType.STRING_LIST),
        Feature("vip", ValueType.BOOL, default=False),
    ),
    ttl_seconds=3600,
)
ITEM = FeatureView(
    name="item_stats", entity="item", features=(Feature("ctr", ValueType.FLOAT),), ttl_seconds=60
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> FeatureStore:
    return FeatureStore(InMemoryOnlineStore(clock), [PROFILE, ITEM], clock=clock)


def full_row() -> dict[str, Any]:
    return {
        "age": 31.5,
        "visits": 7,
        "country": "NZ",
        "embedding": [0.5, -1.0],
        "tags": ["a", "b c"],
        "vip": True,
    }


def test_round_trip_of_every_value_type(store: FeatureStore) -> None:
    store.write_features("user_profile", {"u1": full_row()})
    result = store.get_online_features("user_profile", ["u1"])
    assert result.to_dicts() == [{f"user_profile:{k}": v for k, v in full_row().items()}]
    assert result.missing == [[]] and result.stale == [[]]


def test_missing_entity_gets_defaults_and_is_reported_missing(store: FeatureStore) -> None:
    store.write_features("user_profile", {"u1": {"age": 20.0}})
    result = store.get_online_features(["user_profile:age", "user_profile:visits"], ["u1", "u2"])
    assert result.values == [[20.0, 0], [-1.0, 0]]
    assert result.missing == [["user_profile:visits"], ["user_profile:age", "user_profile:visits"]]


def test_value_older_than_ttl_is_stale_even_if_the_key_is_still_there(
    store: FeatureStore, clock: ManualClock
) -> None:
    # written with an old timestamp (e.g. materialized history): the key is fresh, the value is not
    store.write_features("user_profile", {"u1": {"age": 40.0}}, written_at=clock.now() - 7200)
    result = store.get_online_features("user_profile:age", ["u1"])
    assert result.values == [[-1.0]]
    assert result.stale == [["user_profile:age"]]


def test_value_expires_after_ttl(store: FeatureStore, clock: ManualClock) -> None:
    store.write_features("item_stats", {"i1": {"ctr": 0.1}})
    clock.advance(30)
    assert store.get_online_features("item_stats", ["i1"]).values == [[0.1]]
    clock.advance(31)
    assert store.get_online_features("item_stats", ["i1"]).missing == [["item_stats:ctr"]]


def test_shorter_ttl_applies_to_values_already_stored(
    store: FeatureStore, clock: ManualClock
) -> None:
    store.write_features("user_profile", {"u1": {"age": 40.0}})
    clock.advance(120)
    store.register(FeatureView("user_profile", "user", PROFILE.features, ttl_seconds=60))
    assert store.get_online_features("user_profile:age", ["u1"]).stale == [["user_profile:age"]]


def test_refs_from_several_views_keep_their_column_order(store: FeatureStore) -> None:
    store.write_features("user_profile", {"x": {"age": 1.0}})
    store.write_features("item_stats", {"x": {"ctr": 0.5}})
    result = store.get_online_features(["item_stats:ctr", "user_profile:age"], ["x"])
    assert result.refs == ["item_stats:ctr", "user_profile:age"]
    assert result.values == [[0.5, 1.0]]


def test_unknown_view_or_feature_is_named_in_the_error(store: FeatureStore) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        store.get_online_features("nope", ["u1"])
    with pytest.raises(ValidationError, match="no feature 'height'"):
        store.get_online_features("user_profile:height", ["u1"])
    with pytest.raises(ValidationError, match="no feature 'height'"):
        store.write_features("user_profile", {"u1": {"height": 1.0}})


@pytest.mark.parametrize(
    ("feature", "value"),
    [("age", "old"), ("visits", 1.5), ("vip", 1), ("country", 3), ("embedding", "1,2")],
)
def test_wrong_type_is_rejected_naming_feature_and_type(
    store: FeatureStore, feature: str, value: object
) -> None:
    with pytest.raises(ValidationError, match=f"'{feature}' is"):
        store.write_features("user_profile", {"u1": {feature: value}})


def test_a_bad_row_in_a_batch_writes_nothing(store: FeatureStore) -> None:
    with pytest.raises(ValidationError):
        store.write_features("user_profile", {"u1": {"age": 1.0}, "u2": {"age": "bad"}})
    assert store.get_online_features("user_profile:age", ["u1"]).missing == [["user_profile:age"]]


@pytest.mark.parametrize("entity_id", ["", "a b", "x" * 300, "tab\there"])
def test_malformed_entity_ids_are_rejected(store: FeatureStore, entity_id: str) -> None:
    with pytest.raises(ValidationError, match="entity id"):
        store.get_online_features("user_profile", [entity_id])
    with pytest.raises(ValidationError, match="entity id"):
        store.write_features("user_profile", {entity_id: {"age": 1.0}})


def test_too_many_entities_in_one_call_is_rejected(store: FeatureStore) -> None:
    with pytest.raises(ValidationError, match=str(MAX_BATCH_ENTITIES)):
        store.get_online_features("item_stats", [f"i{n}" for n in range(MAX_BATCH_ENTITIES + 1)])


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), 1e12])
def test_ttl_must_be_a_finite_positive_time(ttl: float) -> None:
    with pytest.raises(ValidationError, match="ttl must be a number of seconds above 0"):
        FeatureView("v", "user", (Feature("a"),), ttl_seconds=ttl)


def test_a_default_of_another_type_than_the_feature_is_refused() -> None:
    with pytest.raises(ValidationError, match="feature 'a' is float"):
        Feature("a", default="not a float")


def test_max_entities_bounds_the_view(clock: ManualClock) -> None:
    view = FeatureView("capped", "user", (Feature("a"),), ttl_seconds=100, max_entities=2)
    store = FeatureStore(InMemoryOnlineStore(clock), [view], clock=clock)
    for n in range(3):
        clock.advance(1)
        store.write_features("capped", {f"u{n}": {"a": float(n)}})
    result = store.get_online_features("capped", ["u0", "u1", "u2"])
    assert result.values == [[None], [1.0], [2.0]]


def test_a_value_the_feature_type_cannot_decode_is_reported_missing_not_raised(
    clock: ManualClock,
) -> None:
    # bytes of another type, e.g. left by an earlier version of the view that dropped
    # the feature before a later one declared it again with another type
    online = InMemoryOnlineStore(clock)
    floats = FeatureView("v", "item", (Feature("x", ValueType.FLOAT, -1.0),), 60)
    texts = FeatureView("v", "item", (Feature("x", ValueType.STRING, "?"),), 60)
    FeatureStore(online, [floats], clock=clock).write_features("v", {"i1": {"x": 0.1}})
    FeatureStore(online, [texts], clock=clock).write_features("v", {"i2": {"x": "abc"}})

    # 0.1's bytes are no UTF-8, "abc" is no 8-byte float
    for view, entity in ((texts, "i1"), (floats, "i2")):
        result = FeatureStore(online, [view], clock=clock).get_online_features("v", [entity])
        assert result.values == [[view.features[0].default]]
        assert result.missing == [["v:x"]] and result.stale == [[]]
