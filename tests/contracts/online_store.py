"""Behaviour every :class:`~mlrec.features.online_store.OnlineStore` must have.

A test module subclasses :class:`OnlineStoreContract` and provides the ``store``
fixture, built with the ``clock`` fixture. Stores that measure expiry with the
injected clock (memory, SQLite) keep the defaults: ``clock`` is a
:class:`~mlrec.core.clock.ManualClock` and time passes instantly. A store whose
expiry runs on a server's own clock (Redis) sets ``real_time = True``: ``clock`` is
then the wall clock, expiry tests use ``short_ttl`` seconds and really sleep.
"""

from __future__ import annotations

import math
import threading
import time
from typing import ClassVar

import pytest

from mlrec.core.clock import Clock, ManualClock, SystemClock
from mlrec.features.decay import add_log_score, value_at
from mlrec.features.online_store import (
    CounterUpdate,
    OnlineStore,
    RecentEntry,
    RowWrite,
    StoredRow,
    ViewStats,
)

LONG_TTL = 3600.0
HALF_LIFE = 3600.0


class OnlineStoreContract:
    """The rules of :mod:`mlrec.features.online_store`, as tests."""

    #: True when keys expire by real time (a server's clock), not by ``clock``.
    real_time: ClassVar[bool] = False
    #: The TTL of expiry tests; with real time, small enough to sleep through.
    short_ttl: ClassVar[float] = 10.0

    @pytest.fixture
    def clock(self) -> Clock:
        return SystemClock() if self.real_time else ManualClock()

    @pytest.fixture
    def store(self, clock: Clock) -> OnlineStore:
        raise NotImplementedError

    def elapse(self, clock: Clock, seconds: float) -> None:
        """Let ``seconds`` pass: advance the manual clock, or sleep."""
        if isinstance(clock, ManualClock):
            clock.advance(seconds)
        else:
            time.sleep(seconds)

    # -- protocol -------------------------------------------------------------------------

    def test_store_satisfies_protocol_when_checked_at_runtime(self, store: OnlineStore) -> None:
        assert isinstance(store, OnlineStore)

    def test_ping_returns_true_when_store_is_up(self, store: OnlineStore) -> None:
        assert store.ping() is True

    # -- rows: round trip -------------------------------------------------------------------

    def test_read_rows_returns_every_field_when_written_together(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        values = {"age": b"\x00\x01\x02", "country": "dé".encode(), "score": bytes(range(256))}
        store.write_rows("profile", [RowWrite("u1", values, now)], LONG_TTL, None)

        [row] = store.read_rows("profile", ["u1"], ["age", "country", "score"])

        assert row == StoredRow(values, now)

    def test_read_rows_returns_only_requested_fields_when_asked_for_subset(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        store.write_rows("profile", [RowWrite("u1", {"a": b"1", "b": b"2"}, now)], LONG_TTL, None)

        [row] = store.read_rows("profile", ["u1"], ["b", "never_written"])

        assert row is not None
        assert row.values == {"b": b"2"}
        assert row.written_at == now

    def test_read_rows_returns_row_without_values_when_no_field_requested(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, now)], LONG_TTL, None)

        assert store.read_rows("profile", ["u1"], []) == [StoredRow({}, now)]

    def test_read_rows_returns_none_when_entity_missing(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, clock.now())], LONG_TTL, None)

        rows = store.read_rows("profile", ["nobody", "u1", "nobody_else"], ["a"])

        assert rows[0] is None and rows[2] is None
        assert rows[1] is not None and rows[1].values == {"a": b"1"}

    def test_read_rows_returns_empty_list_when_no_entity_requested(
        self, store: OnlineStore
    ) -> None:
        assert store.read_rows("profile", [], ["a"]) == []

    def test_read_rows_answers_each_position_when_entity_repeats(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, now)], LONG_TTL, None)

        rows = store.read_rows("profile", ["u1", "u2", "u1"], ["a"])

        assert rows == [StoredRow({"a": b"1"}, now), None, StoredRow({"a": b"1"}, now)]

    def test_read_rows_round_trips_entity_ids_when_they_hold_colons_and_unicode(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        ids = ["user:42", "ü-ñ-字", "_index", "a" * 256]
        rows = [RowWrite(e, {"v": e.encode()}, now) for e in ids]
        store.write_rows("profile", rows, LONG_TTL, None)

        got = store.read_rows("profile", ids, ["v"])

        assert [r.values["v"] if r else None for r in got] == [e.encode() for e in ids]

    def test_write_rows_does_nothing_when_batch_empty(self, store: OnlineStore) -> None:
        store.write_rows("profile", [], LONG_TTL, 10)

        assert store.view_stats("profile").entities == 0

    # -- rows: merge and atomicity ---------------------------------------------------------

    def test_write_rows_merges_fields_when_entity_written_twice(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        store.write_rows("profile", [RowWrite("u1", {"a": b"1", "b": b"2"}, now)], LONG_TTL, None)
        store.write_rows("profile", [RowWrite("u1", {"b": b"3"}, now + 1)], LONG_TTL, None)

        assert store.read_rows("profile", ["u1"], ["a", "b"]) == [
            StoredRow({"a": b"1", "b": b"3"}, now + 1)
        ]

    def test_write_rows_skips_a_row_older_than_the_stored_one(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        assert (
            store.write_rows("profile", [RowWrite("u1", {"a": b"new"}, now)], LONG_TTL, None) == 1
        )
        late = [RowWrite("u1", {"a": b"late", "b": b"late"}, now - 60), RowWrite("u2", {}, now)]
        assert store.write_rows("profile", late, LONG_TTL, None) == 1  # u2 only

        # as Feast's online stores: the last write by time wins, so an old value is
        # never served with a newer row's (fresh) time
        assert store.read_rows("profile", ["u1"], ["a", "b"]) == [StoredRow({"a": b"new"}, now)]
        assert store.read_rows("profile", ["u2"], ["a"]) == [StoredRow({}, now)]

    def test_write_rows_applies_rows_in_order_when_batch_repeats_entity(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        rows = [RowWrite("u1", {"a": b"1", "b": b"1"}, now), RowWrite("u1", {"b": b"2"}, now + 1)]
        assert store.write_rows("profile", rows, LONG_TTL, None) == 2

        assert store.read_rows("profile", ["u1"], ["a", "b"]) == [
            StoredRow({"a": b"1", "b": b"2"}, now + 1)
        ]

    def test_read_rows_never_sees_half_a_write_when_writes_race(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        """Each write sets every field to the same value: a reader must never see a mix."""
        fields = [f"f{i}" for i in range(8)]
        stop = threading.Event()
        torn: list[dict[str, bytes]] = []

        def read() -> None:
            while not stop.is_set():
                for row in store.read_rows("profile", ["u1", "u2"], fields):
                    if row is not None and len(set(row.values.values())) > 1:
                        torn.append(row.values)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for n in range(200):
                value = str(n).encode()
                rows = [
                    RowWrite(e, dict.fromkeys(fields, value), clock.now()) for e in ("u1", "u2")
                ]
                store.write_rows("profile", rows, LONG_TTL, None)
        finally:
            stop.set()
            reader.join()

        assert torn == []

    # -- rows: expiry -----------------------------------------------------------------------

    def test_read_rows_hides_entity_when_ttl_passed(self, store: OnlineStore, clock: Clock) -> None:
        ttl = self.short_ttl
        store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, clock.now())], ttl, None)
        assert store.read_rows("profile", ["u1"], ["a"])[0] is not None

        self.elapse(clock, ttl * 1.5)

        assert store.read_rows("profile", ["u1"], ["a"]) == [None]
        assert store.view_stats("profile").entities == 0

    def test_write_rows_refreshes_ttl_when_entity_rewritten(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        ttl = self.short_ttl
        store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, clock.now())], ttl, None)
        self.elapse(clock, ttl * 0.6)
        store.write_rows("profile", [RowWrite("u1", {"b": b"2"}, clock.now())], ttl, None)
        self.elapse(clock, ttl * 0.6)  # 1.2 ttl after the first write: alive thanks to the second

        [row] = store.read_rows("profile", ["u1"], ["a", "b"])
        assert row is not None and row.values == {"a": b"1", "b": b"2"}

        self.elapse(clock, ttl * 0.6)
        assert store.read_rows("profile", ["u1"], ["a"]) == [None]

    def test_write_rows_starts_afresh_when_entity_expired(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        ttl = self.short_ttl
        store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, clock.now())], ttl, None)
        self.elapse(clock, ttl * 1.5)
        now = clock.now()
        store.write_rows("profile", [RowWrite("u1", {"b": b"2"}, now)], ttl, None)

        assert store.read_rows("profile", ["u1"], ["a", "b"]) == [StoredRow({"b": b"2"}, now)]

    def test_apply_ttl_removes_entities_when_ttl_shortened(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        rows = [RowWrite("old", {"a": b"1"}, now - 100), RowWrite("new", {"a": b"2"}, now - 10)]
        store.write_rows("profile", rows, LONG_TTL, None)

        touched = store.apply_ttl("profile", 50)

        assert touched == 2
        assert store.read_rows("profile", ["old", "new"], ["a"]) == [
            None,
            StoredRow({"a": b"2"}, now - 10),
        ]
        assert store.view_stats("profile").entities == 1

    def test_apply_ttl_sets_expiry_from_written_at_when_ttl_shortened(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        ttl = self.short_ttl
        now = clock.now()
        rows = [RowWrite("u1", {"a": b"1"}, now - ttl * 0.5)]
        store.write_rows("profile", rows, LONG_TTL, None)

        store.apply_ttl("profile", ttl)  # expires at written_at + ttl = now + ttl/2
        [stats_ttl] = store.view_stats("profile").ttl_remaining
        assert 0 < stats_ttl <= ttl * 0.5 + 0.01
        self.elapse(clock, ttl * 0.8)

        assert store.read_rows("profile", ["u1"], ["a"]) == [None]

    def test_apply_ttl_keeps_entities_when_ttl_lengthened(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        ttl = self.short_ttl
        store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, clock.now())], ttl, None)

        assert store.apply_ttl("profile", LONG_TTL) == 1
        self.elapse(clock, ttl * 1.5)

        [row] = store.read_rows("profile", ["u1"], ["a"])
        assert row is not None and row.values == {"a": b"1"}

    def test_apply_ttl_returns_zero_when_view_empty(self, store: OnlineStore) -> None:
        assert store.apply_ttl("profile", 10) == 0

    # -- rows: max_entities and delete -------------------------------------------------------

    def test_write_rows_evicts_least_recently_written_when_over_max_entities(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        store.write_rows(
            "profile", [RowWrite(f"e{i}", {"a": b"x"}, now + i) for i in range(5)], LONG_TTL, 3
        )
        present = store.read_rows("profile", [f"e{i}" for i in range(5)], ["a"])
        assert [row is not None for row in present] == [False, False, True, True, True]

        store.write_rows("profile", [RowWrite("e2", {"a": b"y"}, now + 10)], LONG_TTL, 3)
        store.write_rows("profile", [RowWrite("e5", {"a": b"z"}, now + 11)], LONG_TTL, 3)

        present = store.read_rows("profile", [f"e{i}" for i in range(6)], ["a"])
        assert [row is not None for row in present] == [False, False, True, False, True, True]
        assert store.view_stats("profile").entities == 3

    def test_write_rows_evicts_smallest_entity_ids_first_when_written_at_ties(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        # rows of one batch file often share a timestamp: which entities go must not
        # depend on the backend (Redis orders equal scores by member, bytewise)
        now = clock.now()
        store.write_rows(
            "profile", [RowWrite(e, {"a": b"x"}, now) for e in ("c", "a", "d")], LONG_TTL, None
        )
        store.write_rows(
            "profile", [RowWrite(e, {"a": b"x"}, now) for e in ("b", "é", "e")], LONG_TTL, 3
        )

        ids = ["a", "b", "c", "d", "e", "é"]
        present = [
            e for e, row in zip(ids, store.read_rows("profile", ids, ["a"]), strict=True) if row
        ]
        assert present == ["d", "e", "é"]

    def test_write_rows_keeps_everything_when_max_entities_none(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        rows = [RowWrite(f"e{i}", {"a": b"x"}, clock.now()) for i in range(20)]
        store.write_rows("profile", rows, LONG_TTL, None)

        assert store.view_stats("profile").entities == 20

    def test_delete_entities_counts_only_existing_when_some_missing(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        rows = [RowWrite(e, {"a": b"1"}, clock.now()) for e in ("u1", "u2", "u3")]
        store.write_rows("profile", rows, LONG_TTL, None)

        assert store.delete_entities("profile", ["u1", "u3", "ghost"]) == 2
        assert store.read_rows("profile", ["u1", "u2", "u3"], ["a"])[0::2] == [None, None]
        assert store.view_stats("profile").entities == 1
        assert store.delete_entities("profile", ["u1"]) == 0
        assert store.delete_entities("profile", []) == 0

    # -- rows: stats ------------------------------------------------------------------------

    def test_view_stats_describes_live_entities_when_view_written(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        rows = [RowWrite(f"e{i}", {"a": b"12345678", "b": b"1"}, now - 10) for i in range(5)]
        store.write_rows("profile", rows, 600, None)

        stats = store.view_stats("profile", sample=3)

        assert isinstance(stats, ViewStats)
        assert stats.entities == 5
        assert stats.sampled_bytes >= 9  # at least the payload
        assert len(stats.ttl_remaining) == len(stats.write_ages) == 3
        assert all(590 < t <= 600 for t in stats.ttl_remaining)
        assert all(9.5 < age < 15 for age in stats.write_ages)

    def test_view_stats_is_empty_when_view_unknown(self, store: OnlineStore) -> None:
        stats = store.view_stats("never_written")

        assert (stats.entities, stats.sampled_bytes) == (0, 0.0)
        assert stats.ttl_remaining == stats.write_ages == []

    # -- batches and isolation --------------------------------------------------------------

    def test_every_operation_handles_1000_entities_when_batched(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        ids = [f"user{i}" for i in range(1000)]
        fields = [f"f{j}" for j in range(10)]
        rows = [RowWrite(e, {f: f"{e}/{f}".encode() for f in fields}, now) for e in ids]

        store.write_rows("profile", rows, LONG_TTL, None)
        got = store.read_rows("profile", ids, fields)
        store.push_recent("recent", [RecentEntry(e, "item", now) for e in ids], 5, LONG_TTL)
        store.increment("counts", [CounterUpdate(e, {"n": 1.0}, now) for e in ids], LONG_TTL)

        assert got == [StoredRow(dict(r.values), now) for r in rows]
        assert store.view_stats("profile").entities == 1000
        assert store.read_recent("recent", ids, 5) == [[("item", now)]] * 1000
        assert store.read_counters("counts", ids) == [{"n": 1.0}] * 1000
        assert store.delete_entities("profile", ids) == 1000

    def test_views_are_isolated_when_entity_ids_coincide(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        now = clock.now()
        for view in ("va", "vb"):
            store.write_rows(view, [RowWrite("u1", {"a": view.encode()}, now)], LONG_TTL, 1)
            store.push_recent(view, [RecentEntry("u1", view, now)], 5, LONG_TTL)
            store.increment(view, [CounterUpdate("u1", {view: 1.0}, now)], LONG_TTL)
            store.add_decayed(view, [(view, 1.0, now)], HALF_LIFE, LONG_TTL)

        assert store.delete_entities("va", ["u1"]) == 1
        assert store.apply_ttl("va", 1) == 0

        assert store.read_rows("vb", ["u1"], ["a"]) == [StoredRow({"a": b"vb"}, now)]
        assert store.view_stats("vb").entities == 1
        assert store.read_recent("va", ["u1"], 5) == [[("va", now)]]
        assert store.read_recent("vb", ["u1"], 5) == [[("vb", now)]]
        assert store.read_counters("va", ["u1"]) == [{"va": 1.0}]
        assert store.read_counters("vb", ["u1"]) == [{"vb": 1.0}]
        assert [m for m, _ in store.top_decayed("vb", 5, now, HALF_LIFE)] == ["vb"]

    def test_kinds_are_isolated_when_view_names_coincide(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        """Rows, recent lists, counters and decayed scores of one view name do not mix."""
        now = clock.now()
        store.write_rows("v", [RowWrite("u1", {"a": b"1"}, now)], LONG_TTL, None)
        store.push_recent("v", [RecentEntry("u1", "i1", now)], 5, LONG_TTL)
        store.increment("v", [CounterUpdate("u1", {"n": 2.0}, now)], LONG_TTL)
        store.add_decayed("v", [("i1", 1.0, now)], HALF_LIFE, LONG_TTL)

        assert store.read_rows("v", ["u1"], ["a", "n", "i1"]) == [StoredRow({"a": b"1"}, now)]
        assert store.read_counters("v", ["u1"]) == [{"n": 2.0}]
        assert store.read_recent("v", ["u1"], 5) == [[("i1", now)]]
        assert store.view_stats("v").entities == 1

    # -- recent lists -------------------------------------------------------------------------

    def test_push_recent_keeps_one_entry_per_member_when_member_repeats(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        entries = [RecentEntry("u1", "i1", t), RecentEntry("u1", "i2", t + 1)]
        store.push_recent("recent", entries, 10, LONG_TTL)
        store.push_recent("recent", [RecentEntry("u1", "i1", t + 2)], 10, LONG_TTL)

        assert store.read_recent("recent", ["u1"], 10) == [[("i1", t + 2), ("i2", t + 1)]]

    def test_contains_recent_answers_per_pair_in_order(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        store.push_recent(
            "seen", [RecentEntry("u1", "e1", t), RecentEntry("u2", "e2", t)], 10, LONG_TTL
        )

        pairs = [("u1", "e1"), ("u1", "e2"), ("u2", "e2"), ("nobody", "e1")]
        assert store.contains_recent("seen", pairs) == [True, False, True, False]
        assert store.contains_recent("other", pairs[:1]) == [False]
        assert store.contains_recent("seen", []) == []

    def test_push_recent_keeps_later_timestamp_when_older_arrives(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        store.push_recent("recent", [RecentEntry("u1", "i1", t)], 10, LONG_TTL)
        store.push_recent("recent", [RecentEntry("u1", "i1", t - 30)], 10, LONG_TTL)

        assert store.read_recent("recent", ["u1"], 10) == [[("i1", t)]]

    def test_push_recent_keeps_newest_when_over_max_len(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        entries = [RecentEntry("u1", f"i{k}", t + k) for k in (3, 0, 5, 1, 4, 2)]
        store.push_recent("recent", entries, 3, LONG_TTL)
        store.push_recent("recent", [RecentEntry("u1", "old", t - 1)], 3, LONG_TTL)

        assert store.read_recent("recent", ["u1"], 10) == [
            [("i5", t + 5), ("i4", t + 4), ("i3", t + 3)]
        ]

    def test_read_recent_orders_newest_first_when_limit_smaller(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        entries = [RecentEntry("u1", f"i{k}", t + k) for k in range(6)]
        entries.append(RecentEntry("u2", "only", t))
        store.push_recent("recent", entries, 10, LONG_TTL)

        assert store.read_recent("recent", ["u1", "nobody", "u2"], 2) == [
            [("i5", t + 5), ("i4", t + 4)],
            [],
            [("only", t)],
        ]

    def test_read_recent_breaks_ties_by_member_when_timestamps_equal(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        entries = [RecentEntry("u1", m, t) for m in ("b", "c", "a")]
        store.push_recent("recent", entries, 2, LONG_TTL)

        assert store.read_recent("recent", ["u1"], 5) == [[("c", t), ("b", t)]]

    def test_push_recent_refreshes_ttl_when_list_pushed_again(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        ttl = self.short_ttl
        store.push_recent("recent", [RecentEntry("u1", "i1", clock.now())], 5, ttl)
        self.elapse(clock, ttl * 0.6)
        store.push_recent("recent", [RecentEntry("u1", "i2", clock.now())], 5, ttl)
        self.elapse(clock, ttl * 0.6)

        assert [m for m, _ in store.read_recent("recent", ["u1"], 5)[0]] == ["i2", "i1"]

        self.elapse(clock, ttl * 0.6)
        assert store.read_recent("recent", ["u1"], 5) == [[]]

    # -- counters -----------------------------------------------------------------------------

    def test_increment_adds_deltas_when_called_repeatedly(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        store.increment("counts", [CounterUpdate("u1", {"clicks": 1.0, "views": 2.5}, t)], LONG_TTL)
        store.increment(
            "counts",
            [CounterUpdate("u1", {"clicks": 1.0}, t), CounterUpdate("u2", {"clicks": -0.25}, t)],
            LONG_TTL,
        )

        assert store.read_counters("counts", ["u1", "u2", "nobody"]) == [
            {"clicks": 2.0, "views": 2.5},
            {"clicks": -0.25},
            {},
        ]

    def test_increment_drops_old_buckets_when_drop_before_given(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        start = {"clicks:100": 1.0, "clicks:200": 1.0, "views:100": 1.0, "total": 1.0}
        store.increment("counts", [CounterUpdate("u1", start, t)], LONG_TTL)

        store.increment(
            "counts",
            [CounterUpdate("u1", {"clicks:300": 1.0}, t)],
            LONG_TTL,
            drop_before={"clicks": 200},
        )

        assert store.read_counters("counts", ["u1"]) == [
            {"clicks:200": 1.0, "clicks:300": 1.0, "views:100": 1.0, "total": 1.0}
        ]

    def test_increment_drops_buckets_of_every_entity_when_batch_has_several(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        updates = [CounterUpdate(e, {"w:10": 1.0, "w:20": 1.0}, t) for e in ("u1", "u2")]
        store.increment("counts", updates, LONG_TTL)
        updates = [CounterUpdate(e, {"w:30": 1.0}, t) for e in ("u1", "u2")]
        store.increment("counts", updates, LONG_TTL, drop_before={"w": 25})

        assert store.read_counters("counts", ["u1", "u2"]) == [{"w:30": 1.0}] * 2

    def test_increment_starts_afresh_when_ttl_passed(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        ttl = self.short_ttl
        store.increment("counts", [CounterUpdate("u1", {"n": 5.0}, clock.now())], ttl)
        self.elapse(clock, ttl * 1.5)

        assert store.read_counters("counts", ["u1"]) == [{}]
        store.increment("counts", [CounterUpdate("u1", {"n": 1.0}, clock.now())], ttl)
        assert store.read_counters("counts", ["u1"]) == [{"n": 1.0}]

    # -- decayed scores ----------------------------------------------------------------------

    def test_top_decayed_matches_decay_arithmetic_when_events_accumulate(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        events = [("a", 1.0, t - 7200), ("b", 3.0, t - 3600), ("a", 2.0, t), ("c", 0.5, t)]
        store.add_decayed("pop", events[:2], HALF_LIFE, LONG_TTL)
        store.add_decayed("pop", events[2:], HALF_LIFE, LONG_TTL)

        expected: dict[str, float] = {}
        for member, amount, ts in events:
            expected[member] = add_log_score(expected.get(member), amount, ts, HALF_LIFE)
        top = store.top_decayed("pop", 10, t, HALF_LIFE)

        # a: 1/4 + 2 = 2.25; b: 3/2 = 1.5; c: 0.5
        assert [m for m, _ in top] == ["a", "b", "c"]
        for member, value in top:
            assert value == pytest.approx(value_at(expected[member], t, HALF_LIFE), rel=1e-9)
        assert dict(top)["a"] == pytest.approx(2.25, rel=1e-9)

    def test_top_decayed_halves_values_when_one_half_life_later(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        store.add_decayed("pop", [("a", 4.0, t), ("b", 2.0, t)], HALF_LIFE, LONG_TTL)

        later = store.top_decayed("pop", 10, t + HALF_LIFE, HALF_LIFE)

        assert [m for m, _ in later] == ["a", "b"]
        assert [v for _, v in later] == pytest.approx([2.0, 1.0], rel=1e-9)

    def test_top_decayed_ranks_recent_event_first_when_older_amount_larger_but_decayed(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        store.add_decayed("pop", [("old", 10.0, t - 5 * HALF_LIFE)], HALF_LIFE, LONG_TTL)
        store.add_decayed("pop", [("new", 1.0, t)], HALF_LIFE, LONG_TTL)

        assert [m for m, _ in store.top_decayed("pop", 2, t, HALF_LIFE)] == ["new", "old"]
        assert [m for m, _ in store.top_decayed("pop", 1, t, HALF_LIFE)] == ["new"]

    def test_top_decayed_breaks_ties_by_member_when_scores_equal(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        store.add_decayed("pop", [(m, 1.0, t) for m in ("c", "a", "d", "b")], HALF_LIFE, LONG_TTL)

        assert [m for m, _ in store.top_decayed("pop", 2, t, HALF_LIFE)] == ["a", "b"]

    def test_add_decayed_drops_lowest_when_over_max_members(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now()
        scores = [(f"m{k}", float(k + 1), t) for k in range(10)]
        store.add_decayed("pop", scores, HALF_LIFE, LONG_TTL, max_members=4)

        top = store.top_decayed("pop", 100, t, HALF_LIFE)

        assert [m for m, _ in top] == ["m9", "m8", "m7", "m6"]

    def test_add_decayed_keeps_the_members_ranked_first_when_tied_at_max_members(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        # top_decayed ranks ties by member: the greatest tied members are the ones to
        # drop (Redis dropped the smallest, memory the first added)
        t = clock.now()
        tied = [(m, 1.0, t) for m in ("c", "a", "e", "b", "d")]
        store.add_decayed("pop", [*tied, ("z", 5.0, t)], HALF_LIFE, LONG_TTL, max_members=3)

        assert [m for m, _ in store.top_decayed("pop", 10, t, HALF_LIFE)] == ["z", "a", "b"]

        store.add_decayed("pop", [("y", 9.0, t)], HALF_LIFE, LONG_TTL, max_members=3)

        assert [m for m, _ in store.top_decayed("pop", 10, t, HALF_LIFE)] == ["y", "z", "a"]

    def test_top_decayed_is_empty_when_view_unknown_or_expired(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        ttl = self.short_ttl
        assert store.top_decayed("pop", 5, clock.now(), HALF_LIFE) == []
        store.add_decayed("pop", [("a", 1.0, clock.now())], HALF_LIFE, ttl)
        assert len(store.top_decayed("pop", 5, clock.now(), HALF_LIFE)) == 1

        self.elapse(clock, ttl * 1.5)

        assert store.top_decayed("pop", 5, clock.now(), HALF_LIFE) == []

    def test_top_decayed_values_stay_finite_when_timestamps_far_from_epoch(
        self, store: OnlineStore, clock: Clock
    ) -> None:
        t = clock.now() + 365 * 86400  # a year ahead, with a one-hour half-life
        store.add_decayed("pop", [("a", 1.0, t), ("a", 1.0, t)], HALF_LIFE, LONG_TTL)

        [(member, value)] = store.top_decayed("pop", 1, t, HALF_LIFE)

        assert member == "a" and math.isfinite(value)
        assert value == pytest.approx(2.0, rel=1e-6)
