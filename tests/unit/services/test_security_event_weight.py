"""Live item popularity is shared by every user (the popular list, the cold-start
fallback): one event from one client must count as a bounded number of interactions,
whatever quantity (``value``) it claims. Before the fix a purchase with
``value: 1000000`` weighed 5,000,000 and put any item id, known or not, first for
everyone for weeks (half-life one day)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mlrec.events.schemas import MAX_EVENT_WEIGHT, InteractionEvent
from mlrec.services.api.app import create_app
from tests.unit.services.conftest import Harness, wait_for


@pytest.mark.parametrize(
    ("kind", "value"), [("purchase", 1e6), ("view", 1e6), ("rating", 1e6), ("click", 3.0)]
)
def test_an_event_weighs_at_most_the_bound(kind: str, value: float) -> None:
    event = InteractionEvent(user_id="u", item_id="i", type=kind, value=value)
    assert 0 < event.weight <= MAX_EVENT_WEIGHT


def test_one_huge_quantity_does_not_top_the_popular_items(harness: Harness) -> None:
    harness.publish("ease")
    state = harness.state()
    try:
        with TestClient(create_app(state=state)) as client:
            before = client.get("/v1/items/popular", params={"k": 1}).json()["items"]
            event = {"user_id": "attacker", "item_id": "spam", "type": "purchase", "value": 1e6}
            assert client.post("/v1/events", json=event).status_code == 202
            assert wait_for(lambda: state.realtime.popular_items(1))
            [(item, score)] = state.realtime.popular_items(1)
            assert item == "spam" and score <= MAX_EVENT_WEIGHT * 1.01
            after = client.get("/v1/items/popular", params={"k": 1}).json()["items"]
            assert [i["item_id"] for i in after] == [i["item_id"] for i in before]
    finally:
        state.close()
