"""Redis applies a batch of interactions in one script exactly as the generic path does."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator

import pytest

from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.backends.redis_features import RedisOnlineStore
from mlrec.core.clock import ManualClock
from mlrec.events.processor import max_redelivery
from mlrec.features.online_store import InteractionBatchWriter
from mlrec.features.realtime import Interaction, RealtimeConfig, RealtimeFeatures

pytestmark = pytest.mark.integration

HOUR = 3600.0


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisOnlineStore]:
    store = RedisOnlineStore(redis_url, key_prefix=f"t{uuid.uuid4().hex[:12]}", socket_timeout=5.0)
    yield store
    store.flush_prefix()
    store.close()


def _batches(now: float, n_users: int, seed: int = 11) -> list[list[Interaction]]:
    rng = random.Random(seed)
    events: list[Interaction] = []
    for n in range(3000):
        events.append(
            Interaction(
                user_id=f"user-{rng.randrange(n_users)}",
                item_id=f"item-{int(rng.paretovariate(1.1)) % 60}",
                # spread over ten days, so hour and day buckets both roll over and drop
                timestamp=now - 10 * 24 * HOUR + n * 290.0 + rng.random(),
                weight=rng.choice([1.0, 1.0, 2.0, 5.0, 3.5]),
                event_id=None if n % 7 == 0 else f"e{n}",
            )
        )
    # redeliveries: some events again, in later batches and within the same batch
    events += [events[i] for i in rng.sample(range(len(events)), 400)]
    batches = [events[i : i + 500] for i in range(0, len(events), 500)]
    batches[2] = batches[2] + batches[2][:50]
    return batches


# 40 users: each has many events per batch; 2,000: most have one
@pytest.mark.parametrize("n_users", [40, 2000])
def test_redis_batch_script_matches_the_generic_path(
    redis_store: RedisOnlineStore, n_users: int
) -> None:
    assert isinstance(redis_store, InteractionBatchWriter)
    memory = InMemoryOnlineStore()
    assert not isinstance(memory, InteractionBatchWriter)
    now = time.time()
    config = RealtimeConfig(recent_items=20, dedup_window=64, max_popular_items=45)
    generic = RealtimeFeatures(memory, config, ManualClock(now))
    batched = RealtimeFeatures(redis_store, config, ManualClock(now))

    for batch in _batches(now, n_users):
        assert batched.record(batch, validated=True) == generic.record(batch, validated=True)

    users = [f"user-{u}" for u in range(n_users)]
    for expected, got in zip(
        generic.recent_items_many(users), batched.recent_items_many(users), strict=True
    ):
        assert [item for item, _ in got] == [item for item, _ in expected]
        assert [t for _, t in got] == pytest.approx([t for _, t in expected], abs=1e-6)
    for user in users:
        assert batched.activity(user) == generic.activity(user)
    expected_top = generic.popular_items(45)
    got_top = batched.popular_items(45)
    assert [item for item, _ in got_top] == [item for item, _ in expected_top]
    assert [s for _, s in got_top] == pytest.approx([s for _, s in expected_top], rel=1e-9)


def test_the_largest_redelivery_of_one_users_events_is_applied_once_on_redis(
    redis_store: RedisOnlineStore,
) -> None:
    # two full batches of ``mlrec serve stream`` (max_batch 5000), all of one heavy
    # user, applied, then redelivered after a crash before the commit
    features = RealtimeFeatures(redis_store)
    now = time.time()
    events = [
        Interaction("bot-1", f"item-{n % 50}", now - 1.0 + n * 1e-5, 1.0, f"e{n}")
        for n in range(max_redelivery(5000))
    ]
    batches = [events[i : i + 5000] for i in range(0, len(events), 5000)]
    assert sum(features.record(batch) for batch in batches) == len(events)

    assert sum(features.record(batch) for batch in batches) == 0
    assert features.activity("bot-1")["1h"] == len(events)


def test_redis_batch_script_keeps_the_items_ranked_first_when_tied_at_max_popular_items(
    redis_store: RedisOnlineStore,
) -> None:
    # of the items tied at the cut, the greatest ids go: top_decayed ranks ties by id
    # (the script dropped the smallest, items ranked before ones it kept)
    now = time.time()
    config = RealtimeConfig(max_popular_items=3)
    generic = RealtimeFeatures(InMemoryOnlineStore(), config, ManualClock(now))
    batched = RealtimeFeatures(redis_store, config, ManualClock(now))
    batch = [Interaction(f"u-{item}", item, now) for item in ("c", "a", "e", "b", "d")]
    batch.append(Interaction("u-z", "z", now, weight=5.0))

    for features in (generic, batched):
        features.record(batch, validated=True)

    assert [item for item, _ in batched.popular_items(10)] == ["z", "a", "b"]
    assert [item for item, _ in generic.popular_items(10)] == ["z", "a", "b"]
