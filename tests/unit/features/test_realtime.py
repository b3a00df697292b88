import pytest

from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.core.clock import ManualClock
from mlrec.core.errors import ValidationError
from mlrec.features.realtime import HOUR, Interaction, RealtimeConfig, RealtimeFeatures


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def realtime(clock: ManualClock) -> RealtimeFeatures:
    return RealtimeFeatures(InMemoryOnlineStore(clock), RealtimeConfig(recent_items=3), clock)


def test_recent_items_are_newest_first_deduplicated_and_bounded(
    realtime: RealtimeFeatures, clock: ManualClock
) -> None:
    t = clock.now()
    realtime.record([Interaction("u1", item, t + n) for n, item in enumerate("abcb")])
    realtime.record([Interaction("u1", "d", t + 10)])
    assert [item for item, _ in realtime.recent_items("u1")] == ["d", "b", "c"]
    assert realtime.recent_items("u1", limit=1) == [("d", t + 10)]
    assert realtime.recent_items("nobody") == []


def test_activity_counts_fall_out_of_their_windows(
    realtime: RealtimeFeatures, clock: ManualClock
) -> None:
    realtime.record([Interaction("u1", "a", clock.now()), Interaction("u1", "b", clock.now())])
    assert realtime.activity("u1") == {"1h": 2, "24h": 2, "7d": 2}
    clock.advance(3 * HOUR)
    realtime.record([Interaction("u1", "c", clock.now())])
    assert realtime.activity("u1") == {"1h": 1, "24h": 3, "7d": 3}
    clock.advance(2 * 86400)
    assert realtime.activity("u1") == {"1h": 0, "24h": 0, "7d": 3}


def test_popularity_decays_so_recent_interest_wins(
    realtime: RealtimeFeatures, clock: ManualClock
) -> None:
    old = clock.now()
    realtime.record([Interaction(f"u{n}", "old_hit", old) for n in range(4)])
    clock.advance(3 * 86400)  # three half-lives: 4 -> 0.5
    realtime.record([Interaction("u9", "new_hit", clock.now())])
    ranked = realtime.popular_items(2)
    assert [item for item, _ in ranked] == ["new_hit", "old_hit"]
    assert ranked[0][1] == pytest.approx(1.0)
    assert ranked[1][1] == pytest.approx(0.5)


def test_bad_interactions_are_rejected(realtime: RealtimeFeatures) -> None:
    with pytest.raises(ValidationError):
        realtime.record([Interaction("u 1", "a", 0.0)])
    with pytest.raises(ValidationError):
        realtime.record([Interaction("u1", "a", 0.0, weight=0.0)])
    with pytest.raises(ValidationError):
        realtime.popular_items(0)


def test_an_event_id_is_applied_once_even_when_redelivered(
    realtime: RealtimeFeatures, clock: ManualClock
) -> None:
    event = Interaction("u1", "a", clock.now(), event_id="e1")
    assert realtime.record([event, event]) == 1
    assert realtime.record([event, Interaction("u1", "b", clock.now(), event_id="e2")]) == 1
    assert realtime.activity("u1")["1h"] == 2
    assert realtime.popular_items(1)[0] == ("a", pytest.approx(1.0))
