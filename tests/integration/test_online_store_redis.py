"""The Redis online store keeps the online store contract on a real server, and fails fast."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from mlrec.backends.redis_features import RedisOnlineStore
from mlrec.core.clock import Clock
from mlrec.core.errors import BackendUnavailableError
from mlrec.features.online_store import OnlineStore, RecentEntry, RowWrite, StoredRow
from tests.contracts.online_store import LONG_TTL, OnlineStoreContract

pytestmark = pytest.mark.integration


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_store(redis_url: str, key_prefix: str) -> Iterator[RedisOnlineStore]:
    store = RedisOnlineStore(redis_url, key_prefix=key_prefix, socket_timeout=2.0)
    yield store
    store.flush_prefix()
    store.close()


class TestRedisOnlineStore(OnlineStoreContract):
    real_time = True
    short_ttl = 0.4

    @pytest.fixture
    def store(self, clock: Clock, redis_url: str, key_prefix: str) -> Iterator[OnlineStore]:
        store = RedisOnlineStore(redis_url, key_prefix=key_prefix, socket_timeout=2.0, clock=clock)
        yield store
        store.flush_prefix()
        store.close()


# -- layout --------------------------------------------------------------------------------


def test_write_rows_uses_one_hash_per_entity_when_stored(
    redis_store: RedisOnlineStore, redis_url: str, key_prefix: str
) -> None:
    redis_store.write_rows("profile", [RowWrite("u1", {"a": b"\x01"}, 1.7e9)], 60, None)
    raw = redis.Redis.from_url(redis_url)

    assert raw.hgetall(f"{key_prefix}:profile:u1") == {b"a": b"\x01", b"_ts": b"1700000000.0"}
    assert 0 < raw.pttl(f"{key_prefix}:profile:u1") <= 60_000
    assert raw.zscore(f"{key_prefix}:_index:profile", "u1") == 1.7e9
    raw.close()


def test_push_recent_bounds_the_sorted_set_when_many_members_pushed(
    redis_store: RedisOnlineStore, redis_url: str, key_prefix: str
) -> None:
    entries = [RecentEntry("u1", f"i{k}", 1.7e9 + k) for k in range(50)]
    redis_store.push_recent("recent", entries, 10, 60)
    raw = redis.Redis.from_url(redis_url)

    assert raw.zcard(f"{key_prefix}:_recent:recent:u1") == 10
    assert 0 < raw.pttl(f"{key_prefix}:_recent:recent:u1") <= 60_000
    raw.close()


def test_index_forgets_entities_when_their_keys_expire(redis_store: RedisOnlineStore) -> None:
    redis_store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, time.time())], 0.2, None)
    time.sleep(0.4)
    redis_store.write_rows("profile", [RowWrite("u2", {"a": b"1"}, time.time())], 60, 1)

    assert redis_store.view_stats("profile").entities == 1
    assert redis_store.read_rows("profile", ["u2"], ["a"])[0] is not None


def test_apply_ttl_reaches_every_entity_when_a_page_drops_keys_evicted_behind_its_back(
    redis_store: RedisOnlineStore, redis_url: str, key_prefix: str
) -> None:
    # apply_ttl pages through the index by rank; entities whose key is gone (evicted
    # under maxmemory, deleted by hand) leave the index on the way, and the pages after
    # them must not skip as many live entities as were dropped
    now = time.time()
    rows = [RowWrite(f"e{n:04d}", {"a": b"\x01"}, now - 1200 + n * 0.1) for n in range(1200)]
    redis_store.write_rows("view", rows, 3600, None)
    raw = redis.Redis.from_url(redis_url)
    raw.delete(*[f"{key_prefix}:view:e{n:04d}" for n in range(100)])  # all in the first page

    redis_store.apply_ttl("view", 7200)

    live = [row.entity_id for row in rows[100:]]
    with raw.pipeline(transaction=False) as pipe:
        for entity in live:
            pipe.pttl(f"{key_prefix}:view:{entity}")
        remaining = dict(zip(live, pipe.execute(), strict=True))
    # written 0-20 minutes ago with a 2 h TTL: over 1.6 h left (1 h before apply_ttl)
    kept_old_ttl = [entity for entity, ms in remaining.items() if ms < 1.6 * 3600 * 1000]
    assert kept_old_ttl == []
    raw.close()


def test_store_reconnects_when_its_connection_is_killed(
    redis_store: RedisOnlineStore, redis_url: str
) -> None:
    redis_store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, 1.7e9)], LONG_TTL, None)
    raw = redis.Redis.from_url(redis_url)
    mine = redis_store._client.client_id()
    raw.execute_command("CLIENT", "KILL", "ID", mine)  # type: ignore[no-untyped-call]
    raw.close()

    assert redis_store.read_rows("profile", ["u1"], ["a"]) == [StoredRow({"a": b"1"}, 1.7e9)]


# -- outage ----------------------------------------------------------------------------------


def test_read_rows_raises_unavailable_within_a_second_when_port_closed() -> None:
    store = RedisOnlineStore("redis://127.0.0.1:1/0")
    started = time.monotonic()

    with pytest.raises(BackendUnavailableError):
        store.read_rows("profile", ["u1"], ["a"])
    with pytest.raises(BackendUnavailableError):
        store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, 0.0)], 60, None)

    assert time.monotonic() - started < 1.0
    assert store.ping() is False


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a hung Redis)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()


def test_read_rows_raises_unavailable_within_a_second_when_server_hangs(
    silent_server: str,
) -> None:
    store = RedisOnlineStore(silent_server, socket_timeout=0.25)
    started = time.monotonic()

    with pytest.raises(BackendUnavailableError):
        store.read_rows("profile", ["u1", "u2"], ["a"])

    assert time.monotonic() - started < 1.0
    assert store.ping() is False
    store.close()


def test_concurrent_reads_fail_fast_without_piling_up_when_server_hangs(
    silent_server: str,
) -> None:
    store = RedisOnlineStore(silent_server, socket_timeout=0.25, max_connections=4)
    outcomes: list[tuple[str, float]] = []

    def read() -> None:
        started = time.monotonic()
        try:
            store.read_rows("profile", ["u1"], ["a"])
            outcomes.append(("answered", time.monotonic() - started))
        except BackendUnavailableError:
            outcomes.append(("unavailable", time.monotonic() - started))

    threads = [threading.Thread(target=read) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)

    assert not any(t.is_alive() for t in threads)
    assert {kind for kind, _ in outcomes} == {"unavailable"}
    assert max(elapsed for _, elapsed in outcomes) < 1.0
    store.close()
