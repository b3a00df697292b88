"""A batch of interactions is applied whole or not at all on the embedded store, so a
crash part-way never makes a redelivered event count twice."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from mlrec.backends.sqlite_features import SqliteOnlineStore
from mlrec.core.errors import BackendUnavailableError
from mlrec.features.online_store import RecentEntry
from mlrec.features.realtime import Interaction, RealtimeFeatures


class CrashBeforeRememberingIds(SqliteOnlineStore):
    """Fails the first write of the seen event ids: every other update of the batch
    has been made by then (a process killed at that point)."""

    seen_view = ""
    crashed = False

    def push_recent(
        self, view: str, entries: Sequence[RecentEntry], max_len: int, ttl_seconds: float
    ) -> None:
        if view == self.seen_view and not self.crashed:
            self.crashed = True
            raise BackendUnavailableError("killed before the event ids were remembered")
        super().push_recent(view, entries, max_len, ttl_seconds)


def test_a_batch_that_fails_part_way_leaves_nothing_and_its_redelivery_counts_once(
    tmp_path: Path,
) -> None:
    store = CrashBeforeRememberingIds(tmp_path / "features.db")
    features = RealtimeFeatures(store)
    store.seen_view = features.seen_view
    now = time.time()
    batch = [Interaction("u1", "a", now, event_id="e1"), Interaction("u1", "b", now, event_id="e2")]

    with pytest.raises(BackendUnavailableError):
        features.record(batch)
    assert features.recent_items("u1") == []
    assert features.activity("u1")["1h"] == 0
    assert features.popular_items(5) == []

    assert features.record(batch) == 2  # the redelivery
    assert features.record(batch) == 0
    assert features.activity("u1")["1h"] == 2
    assert [item for item, _ in features.popular_items(5)] == ["a", "b"]
