"""A running API serves feature views applied after it started."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from mlrec.backends.memory import InMemoryFeatureRegistry
from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.core.errors import BackendUnavailableError
from mlrec.features.builtin import BUILTIN_VIEWS
from mlrec.features.definitions import Feature, FeatureView
from mlrec.features.store import FeatureStore
from mlrec.services.api.feature_views import FeatureViewFollower


def test_views_applied_after_start_are_served_and_a_changed_ttl_replaces_the_old() -> None:
    registry = InMemoryFeatureRegistry()
    store = FeatureStore(InMemoryOnlineStore(), BUILTIN_VIEWS)
    follower = FeatureViewFollower(registry, store)
    user_stats = store.view("user_stats")
    profile = FeatureView("profile", "user", (Feature("age", default=0.0),), ttl_seconds=86400)

    registry.apply([], [profile, replace(user_stats, ttl_seconds=3600)])

    assert follower.refresh() == 2
    assert store.view("profile") == profile
    assert store.view("user_stats").ttl_seconds == 3600
    assert follower.refresh() == 0  # nothing changed since


def test_a_registry_that_cannot_be_read_keeps_the_views_served() -> None:
    class Down(InMemoryFeatureRegistry):
        def list_views(self):  # type: ignore[no-untyped-def]
            raise ConnectionError("database down")

    store = FeatureStore(InMemoryOnlineStore(), BUILTIN_VIEWS)
    assert FeatureViewFollower(Down(), store).refresh() == 0
    assert set(store.views) == {view.name for view in BUILTIN_VIEWS}


def test_a_database_outage_is_logged_in_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the poll runs every few seconds: a traceback each time buried the logs
    class Down(InMemoryFeatureRegistry):
        def list_views(self):  # type: ignore[no-untyped-def]
            raise BackendUnavailableError("cannot connect to the database postgresql://db/x")

    store = FeatureStore(InMemoryOnlineStore(), BUILTIN_VIEWS)
    with caplog.at_level(logging.WARNING):
        FeatureViewFollower(Down(), store).refresh()

    [record] = caplog.records
    assert "cannot connect to the database" in record.getMessage()
    assert record.exc_info is None
