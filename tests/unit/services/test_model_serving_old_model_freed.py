"""A swapped-out model version is freed, even if the last request before the swap had
a ``filter`` and none has since (the filter's cached item mask must not keep it)."""

from __future__ import annotations

import gc
import weakref

import pytest
from fastapi.testclient import TestClient

from mlrec.data import make_demo
from mlrec.services.api.app import create_app
from mlrec.services.api.service import _MAX_CACHED_FILTER_VALUES
from tests.unit.services.conftest import Harness


def _filters(harness: Harness) -> dict[str, str]:
    items = list(harness.data.items.ids())
    categories = sorted({c for info in harness.data.item_info.values() for c in info.categories})
    # a filter too large to cache by value: more ids than the cache takes
    many = items + [f"unknown-{n}" for n in range(_MAX_CACHED_FILTER_VALUES)]
    return {"cached": f"category:{categories[0]}", "large": "items:" + "|".join(many)}


@pytest.mark.parametrize("kind", ["cached", "large"])
def test_a_swapped_out_model_is_freed_after_a_filtered_request(harness: Harness, kind: str) -> None:
    harness.publish("ease")
    state = harness.state()
    user = harness.data.users.id(0)
    item_filter = _filters(harness)[kind]
    try:
        with TestClient(create_app(state=state)) as client:
            answer = client.post(
                "/v1/recommendations", json={"user_ids": [user], "k": 5, "filter": item_filter}
            )
            assert answer.status_code == 200
            assert answer.json()[0]["model"]["version"] == 1
            old = state.models.current
            assert old is not None
            freed = weakref.ref(old)
            del old

            harness.publish("itemknn")  # version 2, promoted
            assert state.models.refresh()
            # unfiltered traffic only from now on
            body = client.get(f"/v1/recommendations/{user}?k=5").json()
            assert body["model"]["version"] == 2
            gc.collect()
            assert freed() is None
    finally:
        state.close()


def test_filtered_answers_after_a_swap_use_the_new_model_s_catalogue(harness: Harness) -> None:
    harness.publish("ease")
    state = harness.state()
    user = harness.data.users.id(0)
    item_filter = _filters(harness)["cached"]
    category = item_filter.partition(":")[2]
    try:
        with TestClient(create_app(state=state)) as client:
            path = f"/v1/recommendations/{user}?k=5&filter={item_filter}"
            assert client.get(path).json()["model"]["version"] == 1
            # version 2 knows other items, in another order: the old mask cannot serve
            harness.data = make_demo(n_users=90, n_items=50, seed=11)
            harness.publish("itemknn")
            assert state.models.refresh()
            body = client.get(path).json()
            assert body["model"]["version"] == 2
            served = state.models.current
            assert served is not None
            info = served.model.item_info
            assert body["items"]
            assert all(category in info[i["item_id"]].categories for i in body["items"])
    finally:
        state.close()
