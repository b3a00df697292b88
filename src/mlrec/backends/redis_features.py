"""Redis :class:`~mlrec.features.online_store.OnlineStore`: the production online store.

Key layout (``P`` is ``key_prefix``; view names never start with ``_``, so the
``P:_<kind>:`` key spaces cannot collide with a view's entity hashes):

=================================  ==========  =============================================
key                                type        content
=================================  ==========  =============================================
``P:<view>:<entity>``              hash        one field per feature (codec bytes) + ``_ts``
                                               (written_at, a decimal string); PEXPIRE ttl
``P:_index:<view>``                sorted set  entity -> written_at (counts, eviction order)
``P:_expiry:<view>``               sorted set  entity -> expiry in server milliseconds
``P:_recent:<view>:<entity>``      sorted set  member -> timestamp, newest ``max_len`` kept
``P:_counters:<view>:<entity>``    hash        counter name -> float
``P:_decayed:<view>``              sorted set  member -> log score (:mod:`mlrec.features.decay`)
=================================  ==========  =============================================

Every mutation is one Lua script (EVALSHA) per chunk of the batch, so each entity's
write is atomic; the chunks of a batch go out in one pipelined round trip. Reads are
one pipelined round trip of ``HMGET`` whatever the number of entities.

Time: keys expire by the Redis server's clock (``PEXPIRE ttl`` on each write, so
expiry is "server now + ttl", as the in-memory store's "clock now + ttl").
:meth:`RedisOnlineStore.apply_ttl` sets the remaining TTL to
``written_at + ttl - clock.now()``, so only *durations* cross between the injected
clock and the server's: a skew between the two clocks does not matter.

Failures: connection errors and timeouts (``socket_timeout``, 0.25 s by default, also
used to connect and to wait for a pooled connection) raise
:class:`~mlrec.core.errors.BackendUnavailableError`; nothing is retried, so a round trip
waits at most one timeout per step (a pooled connection, connecting, the reply), and
a method that makes several round trips in a row (:meth:`~RedisOnlineStore.view_stats`,
:meth:`~RedisOnlineStore.apply_ttl`) that long for each. The pool is bounded
(``max_connections``), so an outage cannot pile up threads or sockets; broken
connections are replaced on the next call, which is how the store reconnects.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeVar, cast

import orjson

from mlrec.core.clock import Clock, SystemClock
from mlrec.core.errors import BackendError, BackendUnavailableError, ConfigurationError
from mlrec.core.urls import redact_url
from mlrec.features.decay import EPOCH, log_score, value_at
from mlrec.features.online_store import (
    CounterUpdate,
    RealtimePlan,
    RecentEntry,
    RowWrite,
    StoredRow,
    ViewStats,
)

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - redis is a core dependency
    raise ImportError(
        "RedisOnlineStore needs redis-py: pip install 'redis>=5' (and hiredis for speed)"
    ) from exc

__all__ = ["RedisOnlineStore"]

_T = TypeVar("_T")
_TS = "_ts"
# Rows (or members) per script call: bounds how long one call holds the server.
_CHUNK = 500
# Events per script call of apply_prepared.
_EVENTS_PER_CALL = 500
# Index members removed per call when trimming expired entities during a write.
_TRIM_PER_WRITE = 1000

# Server time in milliseconds (scripts run with a frozen clock in Redis >= 7, so this
# is the same instant PEXPIRE measures from).
_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Remove index members whose expiry (server ms) has passed, at most `limit`.
_TRIM_FN = """
local function trim(index, expiry, now, limit)
  local dead = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, limit)
  if #dead > 0 then
    redis.call('ZREM', index, unpack(dead))
    redis.call('ZREM', expiry, unpack(dead))
  end
  return #dead
end
"""

# Keep the n best members of a decayed set as top_decayed ranks them: by score, ties
# by member name, so of the members tied at the cut the greatest go (ZREMRANGEBYRANK
# would drop the smallest: members ranked before ones it keeps).
_KEEP_BEST_FN = """
local function keep_best(key, n)
  local over = redis.call('ZCARD', key) - n
  if over <= 0 then return end
  local cut = redis.call('ZRANGE', key, over - 1, over - 1, 'WITHSCORES')[2]
  over = over - redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. cut)
  while over > 0 do
    local tied = redis.call('ZREVRANGEBYSCORE', key, cut, cut, 'LIMIT', 0, math.min(over, 1000))
    if #tied == 0 then break end
    redis.call('ZREM', key, unpack(tied))
    over = over - #tied
  end
end
"""

# KEYS: recent-list key per pair. ARGV: member per pair. Returns 1/0 per pair.
_CONTAINS = """
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('ZSCORE', KEYS[i], ARGV[i]) and 1 or 0
end
return out
"""

# Applies a batch of interactions to the four real-time views in one call (see
# RealtimeFeatures and RealtimePlan): the same updates as push_recent (recent items,
# seen event ids), increment (windowed activity counters) and add_decayed (item
# popularity), after the same dedup check as contains_recent. The events and the
# plan travel as two JSON arguments: packing one argument per field in redis-py
# measured more time than Redis took to apply them. Keys are built from prefixes in
# the plan, so this script needs a standalone (non-cluster) Redis, like the chart's.
# ARGV[1]: [[user, item, timestamp, weight, event_id or null], ...]; ARGV[2]: the plan.
_APPLY_INTERACTIONS = (
    _KEEP_BEST_FN
    + """
local events, c = cjson.decode(ARGV[1]), cjson.decode(ARGV[2])
local null, call, fmt = cjson.null, redis.call, string.format
local ln2h = math.log(2) / c.half_life
local function num(x) return fmt('%.17g', x) end
-- keep the newest n members and refresh the TTL
local function keep_newest(key, n)
  if call('ZCARD', key) > n then call('ZREMRANGEBYRANK', key, 0, -(n + 1)) end
  call('PEXPIRE', key, c.user_ttl_ms)
end
-- ZADD GT of flat (score, member) pairs (a repeated member keeps its greatest score),
-- then keep the newest n and refresh the TTL
local function add_newest(key, pairs_, n)
  for j = 1, #pairs_, 2000 do
    call('ZADD', key, 'GT', unpack(pairs_, j, math.min(j + 1999, #pairs_)))
  end
  keep_newest(key, n)
end
local hour_names, day_names = {}, {}
local function bucket_names(t)
  local hour, day = math.floor(t / 3600) * 3600, math.floor(t / 86400) * 86400
  local h, d = hour_names[hour], day_names[day]
  if not h then h = fmt('h:%d', hour); hour_names[hour] = h end
  if not d then d = fmt('d:%d', day); day_names[day] = d end
  return h, d
end
local function add_counts(key, counts)
  local created = false
  for name, n in pairs(counts) do
    -- counts are whole numbers here: HINCRBY skips HINCRBYFLOAT's float formatting
    if call('HINCRBY', key, name, n) == n then created = true end
  end
  -- old buckets can only appear to expire when a new one starts: scan only then
  if created then
    for _, name in ipairs(call('HKEYS', key)) do
      local prefix, start = string.match(name, '^(.*):([^:]*)$')
      local limit = prefix and c.drop_before[prefix]
      if limit and tonumber(start) and tonumber(start) < limit then call('HDEL', key, name) end
    end
  end
  call('PEXPIRE', key, c.user_ttl_ms)
end
local pop, pop_order = {}, {}
local function add_popularity(item, t, w)
  local new, cur = math.log(w) + (t - c.epoch) * ln2h, pop[item]
  if cur then
    local high, low = math.max(cur, new), math.min(cur, new)
    new = high + math.log(1 + math.exp(low - high))
  else
    pop_order[#pop_order + 1] = item
  end
  pop[item] = new
end
-- Events arrive sorted by user: each user's run of events is applied at once, so
-- each of their keys is written once per batch.
local function apply_user(u, first, last)
  local seen_key = c.seen_prefix .. u
  local recent, counts, applied, has_ids = {}, {}, 0, false
  for i = first, last do
    local e = events[i]
    local item, t, w, id = e[2], e[3], e[4], e[5]
    local ts = num(t)
    local fresh = id == null
    if not fresh then
      -- NX both checks and remembers the id: 1 only the first time it is seen
      has_ids = true
      fresh = call('ZADD', seen_key, 'NX', ts, id) == 1
    end
    if fresh then
      applied = applied + 1
      recent[#recent + 1] = ts
      recent[#recent + 1] = item
      local h, d = bucket_names(t)
      counts[h] = (counts[h] or 0) + 1
      counts[d] = (counts[d] or 0) + 1
      add_popularity(item, t, w)
    end
  end
  if has_ids then keep_newest(seen_key, c.dedup_window) end
  if applied > 0 then
    add_newest(c.recent_prefix .. u, recent, c.recent_max)
    add_counts(c.counters_prefix .. u, counts)
  end
  return applied
end
local applied, first, n_events = 0, 1, #events
for i = 1, n_events do
  if i == n_events or events[i + 1][1] ~= events[i][1] then
    applied = applied + apply_user(events[i][1], first, i)
    first = i + 1
  end
end
if #pop_order > 0 then
  local key = c.decayed_key
  for _, item in ipairs(pop_order) do
    local new, cur = pop[item], call('ZSCORE', key, item)
    if cur then
      cur = tonumber(cur)
      local high, low = math.max(cur, new), math.min(cur, new)
      new = high + math.log(1 + math.exp(low - high))
    end
    call('ZADD', key, num(new), item)
  end
  keep_best(key, c.max_popular)
  call('PEXPIRE', key, c.popularity_ttl_ms)
end
return applied
"""
)

# KEYS: recent-list keys. ARGV: limit. Per key: flat member, score, ... newest first.
# One script call instead of a pipeline of ZREVRANGE: redis-py converts each
# pipelined WITHSCORES reply in Python, which dominated the API's history reads.
_READ_RECENT = """
local out, stop = {}, tonumber(ARGV[1]) - 1
for i = 1, #KEYS do out[i] = redis.call('ZREVRANGE', KEYS[i], 0, stop, 'WITHSCORES') end
return out
"""

# KEYS: index, expiry, hash of each row. ARGV: ttl_ms, max_entities (0 = none),
# hash key prefix, trim limit, then per row: entity, written_at, n_fields, f1, v1, ...
_WRITE_ROWS = (
    _NOW_MS
    + _TRIM_FN
    + """
local ttl = tonumber(ARGV[1])
local max_entities = tonumber(ARGV[2])
local key_prefix = ARGV[3]
trim(KEYS[1], KEYS[2], now, tonumber(ARGV[4]))
local expires = string.format('%d', now + ttl)
local a, written = 5, 0
for i = 3, #KEYS do
  local key, entity, ts, n = KEYS[i], ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  local old = redis.call('HGET', key, '_ts')
  -- a row older than the stored one is skipped: the last write by time wins
  if not (old and tonumber(old) > tonumber(ts)) then
    if n > 0 then
      redis.call('HSET', key, '_ts', ts, unpack(ARGV, a, a + 2 * n - 1))
    else
      redis.call('HSET', key, '_ts', ts)
    end
    redis.call('PEXPIRE', key, ttl)
    redis.call('ZADD', KEYS[1], ts, entity)
    redis.call('ZADD', KEYS[2], expires, entity)
    written = written + 1
  end
  a = a + 2 * n
end
if max_entities > 0 then
  local over = redis.call('ZCARD', KEYS[1]) - max_entities
  while over > 0 do
    local victims = redis.call('ZRANGE', KEYS[1], 0, math.min(over, 1000) - 1)
    for _, e in ipairs(victims) do redis.call('DEL', key_prefix .. e) end
    redis.call('ZREM', KEYS[1], unpack(victims))
    redis.call('ZREM', KEYS[2], unpack(victims))
    over = over - #victims
  end
end
return written
"""
)

# KEYS: index, expiry. ARGV: hash key prefix, then entities. Returns how many existed.
_DELETE = """
local n = 0
for i = 2, #ARGV do
  local e = ARGV[i]
  redis.call('ZREM', KEYS[1], e)
  redis.call('ZREM', KEYS[2], e)
  if redis.call('DEL', ARGV[1] .. e) == 1 then n = n + 1 end
end
return n
"""

# KEYS: index, expiry. ARGV: trim limit. Returns the live count after trimming.
_TRIM_AND_COUNT = (
    _NOW_MS
    + _TRIM_FN
    + """
local limit = tonumber(ARGV[1])
while trim(KEYS[1], KEYS[2], now, limit) == limit do end
return redis.call('ZCARD', KEYS[1])
"""
)

# apply_ttl, phase 1. KEYS: index, expiry. ARGV: hash key prefix, cutoff written_at,
# limit. Removes up to `limit` entities written at or before the cutoff.
_EXPIRE_OLD = """
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, e in ipairs(dead) do redis.call('DEL', ARGV[1] .. e) end
if #dead > 0 then
  redis.call('ZREM', KEYS[1], unpack(dead))
  redis.call('ZREM', KEYS[2], unpack(dead))
end
return #dead
"""

# apply_ttl, phase 2. KEYS: index, expiry. ARGV: hash key prefix, ttl seconds, clock
# now (seconds), start rank, stop rank. Sets each entity's remaining TTL to
# written_at + ttl - now. Returns {entities touched, entities dropped from the index}
# (their key was gone or their time was up): the ranks after them moved down as many.
_RETTL = (
    _NOW_MS
    + """
local ttl, clock_now = tonumber(ARGV[2]), tonumber(ARGV[3])
local page = redis.call('ZRANGE', KEYS[1], ARGV[4], ARGV[5], 'WITHSCORES')
local touched, dropped = 0, 0
for i = 1, #page, 2 do
  local e = page[i]
  local remaining = math.floor((tonumber(page[i + 1]) + ttl - clock_now) * 1000)
  local key = ARGV[1] .. e
  if remaining <= 0 then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], e)
    redis.call('ZREM', KEYS[2], e)
    dropped = dropped + 1
  elseif redis.call('PEXPIRE', key, remaining) == 1 then
    redis.call('ZADD', KEYS[2], string.format('%d', now + remaining), e)
  else
    redis.call('ZREM', KEYS[1], e)
    redis.call('ZREM', KEYS[2], e)
    dropped = dropped + 1
  end
  touched = touched + 1
end
return {touched, dropped}
"""
)

# KEYS: one sorted set per entry. ARGV: max_len, ttl_ms, then per entry: timestamp,
# member. A key may repeat; each is trimmed and expired after all its members.
_PUSH_RECENT = """
local max_len, ttl = tonumber(ARGV[1]), ARGV[2]
local seen = {}
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'GT', ARGV[2 * i + 1], ARGV[2 * i + 2])
  seen[KEYS[i]] = true
end
for key in pairs(seen) do
  if redis.call('ZCARD', key) > max_len then
    redis.call('ZREMRANGEBYRANK', key, 0, -(max_len + 1))
  end
  redis.call('PEXPIRE', key, ttl)
end
return 0
"""

# KEYS: one hash per update. ARGV: ttl_ms, n_drop, (prefix, threshold)*n_drop, then
# per update: n_deltas, (name, delta)*n.
_INCREMENT = """
local ttl = ARGV[1]
local n_drop = tonumber(ARGV[2])
local drop = {}
for j = 0, n_drop - 1 do drop[ARGV[3 + 2 * j]] = tonumber(ARGV[4 + 2 * j]) end
local a = 3 + 2 * n_drop
for i = 1, #KEYS do
  local key, n = KEYS[i], tonumber(ARGV[a])
  a = a + 1
  local created = false
  for j = 0, n - 1 do
    local delta = ARGV[a + 2 * j + 1]
    local total = redis.call('HINCRBYFLOAT', key, ARGV[a + 2 * j], delta)
    -- counters only grow, so total == delta means a new counter (e.g. a new bucket)
    if tonumber(total) == tonumber(delta) then created = true end
  end
  a = a + 2 * n
  -- old buckets can only appear to expire when a new one starts: scan only then
  if n_drop > 0 and created then
    for _, name in ipairs(redis.call('HKEYS', key)) do
      local prefix, start = string.match(name, '^(.*):([^:]*)$')
      if prefix and drop[prefix] then
        local bucket = tonumber(start)
        if bucket and bucket < drop[prefix] then redis.call('HDEL', key, name) end
      end
    end
  end
  redis.call('PEXPIRE', key, ttl)
end
return 0
"""

# KEYS: the view's sorted set. ARGV: ttl_ms, max_members, then (member, log score)*.
# logaddexp on the server; scores are written with %.17g so they round-trip exactly.
_ADD_DECAYED = (
    _KEEP_BEST_FN
    + """
local key = KEYS[1]
for i = 3, #ARGV, 2 do
  local member, new = ARGV[i], tonumber(ARGV[i + 1])
  local cur = redis.call('ZSCORE', key, member)
  if cur then
    cur = tonumber(cur)
    local high, low = math.max(cur, new), math.min(cur, new)
    new = high + math.log(1 + math.exp(low - high))
  end
  redis.call('ZADD', key, string.format('%.17g', new), member)
end
keep_best(key, tonumber(ARGV[2]))
redis.call('PEXPIRE', key, ARGV[1])
return 0
"""
)

# KEYS: the view's sorted set. ARGV: n. The top n, plus every member tied with the
# n-th, so the caller can break ties by member name as the in-memory store does.
_TOP = """
local top = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
if #top == 0 then return {top, {}} end
local last = top[#top]
return {top, redis.call('ZRANGEBYSCORE', KEYS[1], last, last, 'WITHSCORES')}
"""


@dataclass(frozen=True, slots=True)
class _EncodedBatch:
    """Script arguments for a batch of interactions: JSON chunks and the JSON plan."""

    chunks: list[bytes]
    plan: bytes


def _ms(seconds: float) -> int:
    """A TTL in whole milliseconds, at least 1 (PEXPIRE 0 would delete the key)."""
    return max(1, math.ceil(seconds * 1000))


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RedisOnlineStore:
    """Online store on Redis (or any server speaking its protocol, e.g. Valkey).

    Args:
        url: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS).
        key_prefix: first segment of every key, so several deployments (or tests)
            can share one database; must not contain ``:``.
        socket_timeout: seconds to connect, to wait for a reply, and to wait for a
            free pooled connection before raising ``BackendUnavailableError``.
        clock: the clock ``written_at`` values come from (``apply_ttl`` and write
            ages in ``view_stats``); the wall clock by default.
        max_connections: bound of the connection pool.

    Example::

        store = RedisOnlineStore("redis://127.0.0.1:6379/0")
        store.write_rows("user_profile", [RowWrite("u1", {"age": b"..."}, time.time())],
                         ttl_seconds=86400, max_entities=None)
        store.read_rows("user_profile", ["u1"], ["age"])
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "mlrec",
        socket_timeout: float = 0.25,
        clock: Clock | None = None,
        max_connections: int = 32,
    ) -> None:
        if not key_prefix or ":" in key_prefix:
            raise ConfigurationError(f"key_prefix {key_prefix!r} must be non-empty without ':'")
        if socket_timeout <= 0:
            raise ConfigurationError(f"socket_timeout must be positive, got {socket_timeout}")
        self.clock = clock or SystemClock()
        self.key_prefix = key_prefix
        self.socket_timeout = socket_timeout
        # TCP keepalive is a TCP option: a unix socket connection refuses the argument
        tcp = {} if url.startswith("unix://") else {"socket_keepalive": True}
        try:
            self._pool = redis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=socket_timeout,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                health_check_interval=30,
                retry=Retry(NoBackoff(), 0),
                **tcp,
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid Redis URL {redact_url(url)!r}: {exc}") from None
        self._client = redis.Redis(connection_pool=self._pool)
        register = self._client.register_script
        self._write_rows = register(_WRITE_ROWS)
        self._delete = register(_DELETE)
        self._trim_and_count = register(_TRIM_AND_COUNT)
        self._expire_old = register(_EXPIRE_OLD)
        self._rettl = register(_RETTL)
        self._push_recent = register(_PUSH_RECENT)
        self._increment = register(_INCREMENT)
        self._add_decayed = register(_ADD_DECAYED)
        self._top = register(_TOP)
        self._contains = register(_CONTAINS)
        self._read_recent = register(_READ_RECENT)
        self._apply_interactions = register(_APPLY_INTERACTIONS)

    # -- plumbing -------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BackendUnavailableError(f"Redis is unavailable: {exc}") from exc
        except redis.RedisError as exc:
            raise BackendError(f"Redis command failed: {exc}") from exc

    def _run_scripts(self, calls: list[tuple[Any, list[str], list[Any]]]) -> list[Any]:
        """Run script calls in one pipelined round trip (EVALSHA, loading on NOSCRIPT)."""
        with self._errors():
            if len(calls) == 1:
                script, keys, args = calls[0]
                return [script(keys=keys, args=args)]
            pipe = self._client.pipeline(transaction=False)
            for script, keys, args in calls:
                script(keys=keys, args=args, client=pipe)
            return pipe.execute()

    def _keys(self, view: str) -> tuple[str, str, str]:
        """(hash key prefix, index key, expiry key) of a view."""
        p = self.key_prefix
        return f"{p}:{view}:", f"{p}:_index:{view}", f"{p}:_expiry:{view}"

    # -- rows -----------------------------------------------------------------------

    def write_rows(
        self, view: str, rows: Sequence[RowWrite], ttl_seconds: float, max_entities: int | None
    ) -> int:
        """Write rows (each entity atomically), refresh their TTL, enforce ``max_entities``;
        returns how many were written (a row older than the stored one is skipped)."""
        if not rows:
            return 0
        hash_prefix, index, expiry = self._keys(view)
        head = [_ms(ttl_seconds), max_entities or 0, hash_prefix, _TRIM_PER_WRITE]
        calls: list[tuple[Any, list[str], list[Any]]] = []
        for chunk in _chunks(rows):
            keys = [index, expiry]
            args: list[Any] = list(head)
            for row in chunk:
                keys.append(hash_prefix + row.entity_id)
                args += (row.entity_id, repr(float(row.written_at)), len(row.values))
                for name, value in row.values.items():
                    args += (name, value)
            calls.append((self._write_rows, keys, args))
        return sum(int(written) for written in self._run_scripts(calls))

    def read_rows(
        self, view: str, entity_ids: Sequence[str], fields: Sequence[str]
    ) -> list[StoredRow | None]:
        """For each entity, its requested fields and last write time (None if absent/expired)."""
        if not entity_ids:
            return []
        prefix = f"{self.key_prefix}:{view}:"
        names = (*fields, _TS)
        n = len(fields)
        # One packed write and len(entity_ids) reads on one pooled connection: what a
        # redis-py pipeline does, minus its per-command bookkeeping (this is the hot path).
        pool = self._pool
        try:
            conn = pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                conn.send_packed_command(
                    conn.pack_commands([("HMGET", prefix + e, *names) for e in entity_ids])
                )
                read = conn.read_response
                replies: list[list[bytes | None]] = [read() for _ in entity_ids]
            except BaseException:
                conn.disconnect()  # replies may be left unread: never reuse the socket
                raise
            finally:
                pool.release(conn)  # type: ignore[no-untyped-call]
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise BackendUnavailableError(f"Redis is unavailable: {exc}") from exc
        except redis.RedisError as exc:
            raise BackendError(f"Redis command failed: {exc}") from exc
        out: list[StoredRow | None] = []
        append = out.append
        for reply in replies:
            ts = reply[n]
            if ts is None:
                append(None)
            else:
                append(
                    StoredRow(
                        {f: v for f, v in zip(fields, reply, strict=False) if v is not None},
                        float(ts),
                    )
                )
        return out

    def delete_entities(self, view: str, entity_ids: Sequence[str]) -> int:
        """Remove entities; returns how many existed."""
        if not entity_ids:
            return 0
        hash_prefix, index, expiry = self._keys(view)
        calls: list[tuple[Any, list[str], list[Any]]] = [
            (self._delete, [index, expiry], [hash_prefix, *chunk]) for chunk in _chunks(entity_ids)
        ]
        return sum(int(n) for n in self._run_scripts(calls))

    def apply_ttl(self, view: str, ttl_seconds: float) -> int:
        """Re-apply a TTL to every live entity: remaining = written_at + ttl - clock now.

        Runs in pages of a few hundred entities (one script each), so a large view does
        not block the server; writes that land meanwhile keep their fresh TTL.
        """
        hash_prefix, index, expiry = self._keys(view)
        now = self.clock.now()
        with self._errors():
            self._trim_and_count(keys=[index, expiry], args=[_TRIM_PER_WRITE])
            cutoff = repr(now - ttl_seconds)
            touched = 0
            while removed := int(
                self._expire_old(keys=[index, expiry], args=[hash_prefix, cutoff, _CHUNK])
            ):
                touched += removed
            start = 0
            while True:
                args: list[Any] = [
                    hash_prefix,
                    repr(ttl_seconds),
                    repr(now),
                    start,
                    start + _CHUNK - 1,
                ]
                page, dropped = (int(n) for n in self._rettl(keys=[index, expiry], args=args))
                touched += page
                start += _CHUNK - dropped  # the entities after those dropped moved down
                if page < _CHUNK:
                    break
        return touched

    def view_stats(self, view: str, sample: int = 100) -> ViewStats:
        """Entity count (the index, trimmed of expired entities) and a random sample's
        ``MEMORY USAGE``, remaining TTL and write age."""
        hash_prefix, index, expiry = self._keys(view)
        with self._errors():
            count = int(self._trim_and_count(keys=[index, expiry], args=[_TRIM_PER_WRITE]))
            if count == 0 or sample <= 0:
                return ViewStats(entities=count, sampled_bytes=0.0)
            members = cast(list[bytes], self._client.zrandmember(index, sample))
            pipe = self._client.pipeline(transaction=False)
            for member in members:
                key = hash_prefix.encode() + member
                pipe.memory_usage(key)
                pipe.pttl(key)
                pipe.hget(key, _TS)
            replies = pipe.execute()
        now = self.clock.now()
        sizes: list[float] = []
        ttls: list[float] = []
        ages: list[float] = []
        for i in range(0, len(replies), 3):
            size, pttl, ts = replies[i : i + 3]
            if size is None or ts is None or pttl < 0:  # expired since the trim
                continue
            sizes.append(float(size))
            ttls.append(pttl / 1000)
            ages.append(now - float(ts))
        return ViewStats(
            entities=count,
            sampled_bytes=sum(sizes) / len(sizes) if sizes else 0.0,
            ttl_remaining=ttls,
            write_ages=ages,
        )

    # -- real-time primitives ---------------------------------------------------------

    def push_recent(
        self, view: str, entries: Sequence[RecentEntry], max_len: int, ttl_seconds: float
    ) -> None:
        """Add members (ZADD GT: a member keeps its latest timestamp), keep the newest
        ``max_len`` per entity, refresh the TTL; one script per chunk, atomic per chunk."""
        if not entries:
            return
        prefix = f"{self.key_prefix}:_recent:{view}:"
        head = [max_len, _ms(ttl_seconds)]
        calls: list[tuple[Any, list[str], list[Any]]] = []
        for chunk in _chunks(entries):
            args: list[Any] = list(head)
            for e in chunk:
                args += (repr(float(e.timestamp)), e.member)
            calls.append((self._push_recent, [prefix + e.entity_id for e in chunk], args))
        self._run_scripts(calls)

    def read_recent(
        self, view: str, entity_ids: Sequence[str], limit: int
    ) -> list[list[tuple[str, float]]]:
        """Each entity's recent members with timestamps, newest first, at most ``limit``."""
        if limit <= 0:
            return [[] for _ in entity_ids]
        prefix = f"{self.key_prefix}:_recent:{view}:"
        calls: list[tuple[Any, list[str], list[Any]]] = [
            (self._read_recent, [prefix + entity for entity in chunk], [limit])
            for chunk in _chunks(entity_ids)
        ]
        out: list[list[tuple[str, float]]] = []
        for reply in self._run_scripts(calls):
            for flat in reply:
                members = iter(flat)
                out.append([(m.decode(), float(s)) for m, s in zip(members, members, strict=True)])
        return out

    def contains_recent(self, view: str, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """For each ``(entity_id, member)``: ZSCORE in a script, one call per chunk."""
        if not pairs:
            return []
        prefix = f"{self.key_prefix}:_recent:{view}:"
        calls: list[tuple[Any, list[str], list[Any]]] = [
            (self._contains, [prefix + entity for entity, _ in chunk], [m for _, m in chunk])
            for chunk in _chunks(pairs)
        ]
        return [bool(flag) for reply in self._run_scripts(calls) for flag in reply]

    def increment(
        self,
        view: str,
        updates: Sequence[CounterUpdate],
        ttl_seconds: float,
        drop_before: Mapping[str, float] | None = None,
    ) -> None:
        """Add to counters (HINCRBYFLOAT), drop old buckets and refresh the TTL, in one
        script per chunk of updates."""
        if not updates:
            return
        prefix = f"{self.key_prefix}:_counters:{view}:"
        head: list[Any] = [_ms(ttl_seconds), len(drop_before or {})]
        for name, threshold in (drop_before or {}).items():
            head += (name, repr(float(threshold)))
        calls: list[tuple[Any, list[str], list[Any]]] = []
        for chunk in _chunks(updates):
            args = list(head)
            for u in chunk:
                args.append(len(u.deltas))
                for name, delta in u.deltas.items():
                    args += (name, repr(float(delta)))
            calls.append((self._increment, [prefix + u.entity_id for u in chunk], args))
        self._run_scripts(calls)

    def read_counters(self, view: str, entity_ids: Sequence[str]) -> list[dict[str, float]]:
        """All counters of each entity (empty dict if none)."""
        prefix = f"{self.key_prefix}:_counters:{view}:"
        with self._errors():
            pipe = self._client.pipeline(transaction=False)
            for entity in entity_ids:
                pipe.hgetall(prefix + entity)
            replies = pipe.execute()
        return [{k.decode(): float(v) for k, v in reply.items()} for reply in replies]

    def add_decayed(
        self,
        view: str,
        scores: Sequence[tuple[str, float, float]],
        half_life_seconds: float,
        ttl_seconds: float,
        max_members: int = 100_000,
    ) -> None:
        """Add ``(member, amount, timestamp)`` to the view's decayed scores (logaddexp
        in a script on the server), keep the ``max_members`` best, refresh the TTL."""
        if not scores:
            return
        key = f"{self.key_prefix}:_decayed:{view}"
        head = [_ms(ttl_seconds), max_members]
        calls: list[tuple[Any, list[str], list[Any]]] = []
        for chunk in _chunks(scores):
            args: list[Any] = list(head)
            for member, amount, timestamp in chunk:
                args += (member, repr(log_score(amount, timestamp, half_life_seconds)))
            calls.append((self._add_decayed, [key], args))
        self._run_scripts(calls)

    def top_decayed(
        self, view: str, n: int, now: float, half_life_seconds: float
    ) -> list[tuple[str, float]]:
        """The ``n`` best members, ties broken by member name, valued at ``now``."""
        if n <= 0:
            return []
        key = f"{self.key_prefix}:_decayed:{view}"
        with self._errors():
            top, ties = self._top(keys=[key], args=[n])
        pairs = {bytes(m): float(s) for m, s in zip(top[::2], top[1::2], strict=True)}
        pairs.update({bytes(m): float(s) for m, s in zip(ties[::2], ties[1::2], strict=True)})
        best = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [(m.decode(), value_at(s, now, half_life_seconds)) for m, s in best]

    def apply_prepared(self, prepared: object) -> int:
        """Apply a batch to the real-time views: one script call per chunk of events,
        all chunks in one round trip; returns how many were new (see
        :class:`~mlrec.features.online_store.InteractionBatchWriter`)."""
        if not isinstance(prepared, _EncodedBatch):
            raise TypeError(f"expected a batch from prepare_interactions, got {prepared!r}")
        if not prepared.chunks:
            return 0
        calls: list[tuple[Any, list[str], list[Any]]] = [
            (self._apply_interactions, [], [chunk, prepared.plan]) for chunk in prepared.chunks
        ]
        return sum(int(applied) for applied in self._run_scripts(calls))

    def prepare_interactions(
        self,
        interactions: Sequence[tuple[str, str, float, float, str | None]],
        plan: RealtimePlan,
    ) -> object:
        """Encode a batch for :meth:`apply_prepared` (CPU only, no I/O)."""
        if not interactions:
            return _EncodedBatch([], b"")
        p = self.key_prefix
        config = orjson.dumps(
            {
                "recent_prefix": f"{p}:_recent:{plan.recent_view}:",
                "seen_prefix": f"{p}:_recent:{plan.seen_view}:",
                "counters_prefix": f"{p}:_counters:{plan.activity_view}:",
                "decayed_key": f"{p}:_decayed:{plan.popularity_view}",
                "recent_max": plan.recent_items,
                "dedup_window": plan.dedup_window,
                "user_ttl_ms": _ms(plan.user_ttl_seconds),
                "drop_before": dict(plan.drop_before),
                "half_life": plan.half_life_seconds,
                "epoch": EPOCH,
                "max_popular": plan.max_popular_items,
                "popularity_ttl_ms": _ms(plan.popularity_ttl_seconds),
            }
        )
        # Each user's events go to one call (sorted by user, stable so their order
        # holds), so the per-user updates, most of the cost, happen once per batch
        # rather than once per chunk. Calls stay small: each blocks Redis while it runs.
        # plain tuples: orjson does not serialise tuple subclasses (named tuples)
        ordered = sorted(map(tuple, interactions), key=itemgetter(0))
        chunks: list[bytes] = []
        start = 0
        while start < len(ordered):
            end = min(start + _EVENTS_PER_CALL, len(ordered))
            while end < len(ordered) and ordered[end][0] == ordered[end - 1][0]:
                end += 1
            chunks.append(orjson.dumps(ordered[start:end]))
            start = end
        return _EncodedBatch(chunks, config)

    # -- lifecycle ----------------------------------------------------------------------

    def ping(self) -> bool:
        """True if Redis answers within the socket timeout (never raises)."""
        try:
            return bool(self._client.ping())
        except Exception:
            return False

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.disconnect()

    def flush_prefix(self) -> int:
        """Delete every key under this store's ``key_prefix`` (tests, resets); SCANs.

        Returns how many keys were deleted.
        """
        deleted = 0
        with self._errors():
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=f"{self.key_prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += int(self._client.unlink(*batch))
                    batch.clear()
            if batch:
                deleted += int(self._client.unlink(*batch))
        return deleted
