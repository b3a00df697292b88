"""Validation of interaction events: each error located at the field it concerns."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from mlrec.events.schemas import EventType, InteractionEvent
from mlrec.events.serde import decode_event, encode_event


def test_a_rating_without_value_is_an_error_at_value() -> None:
    for given in ({}, {"value": None}):
        with pytest.raises(ValidationError) as raised:
            InteractionEvent(user_id="u", item_id="i", type=EventType.RATING, **given)
        [error] = raised.value.errors()
        assert error["loc"] == ("value",)
        assert "a rating event needs a value" in error["msg"]


def test_the_rating_rule_concerns_ratings_only() -> None:
    assert InteractionEvent(user_id="u", item_id="i", type="rating", value=4.0).weight == 4.0
    assert InteractionEvent(user_id="u", item_id="i", type="click").value is None
    # an invalid type is reported once, not also as a rating without value
    with pytest.raises(ValidationError) as raised:
        InteractionEvent.model_validate({"user_id": "u", "item_id": "i", "type": "like"})
    assert [error["loc"] for error in raised.value.errors()] == [("type",)]


def test_future_timestamps_are_still_refused() -> None:
    with pytest.raises(ValidationError, match="timestamp is in the future"):
        InteractionEvent(user_id="u", item_id="i", timestamp=time.time() + 3600)


def test_rating_events_survive_the_wire_format() -> None:
    event = InteractionEvent(user_id="u", item_id="i", type="rating", value=2.5)
    assert decode_event(encode_event(event)) == event
