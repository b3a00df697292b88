"""Validation of interaction events: each error located at the field it concerns."""

from __future__ import annotations

import time

import orjson
import pytest
from pydantic import ValidationError

from mlrec.events.schemas import (
    MAX_CONTEXT_BYTES,
    MAX_CONTEXT_DEPTH,
    MAX_STORED_SKEW_SECONDS,
    EventType,
    InteractionEvent,
)
from mlrec.events.serde import EventDecodeError, decode_event, decode_events, encode_event


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


def test_future_timestamps_are_refused_at_timestamp() -> None:
    with pytest.raises(ValidationError, match="timestamp is in the future") as raised:
        InteractionEvent(user_id="u", item_id="i", timestamp=time.time() + 3600)
    assert [error["loc"] for error in raised.value.errors()] == [("timestamp",)]


def test_a_stored_event_stamped_ahead_of_the_readers_clock_still_decodes() -> None:
    # accepted by an API whose clock runs ahead of the processor's: it must be applied
    ahead = time.time() + 3600
    stored = encode_event(
        InteractionEvent.model_construct(
            event_id="e",
            user_id="u",
            item_id="i",
            type=EventType.VIEW,
            timestamp=ahead,
            value=None,
            context={},
        )
    )
    assert decode_event(stored).timestamp == ahead
    [event] = decode_events([stored])
    assert isinstance(event, InteractionEvent) and event.timestamp == ahead


def test_rating_events_survive_the_wire_format() -> None:
    event = InteractionEvent(user_id="u", item_id="i", type="rating", value=2.5)
    decoded = decode_event(encode_event(event))
    assert isinstance(decoded, InteractionEvent) and decoded.model_dump() == event.model_dump()


def test_a_context_larger_than_the_limit_is_an_error_at_context() -> None:
    # 8 KiB of compact JSON: {"x":"..."} is 8 bytes around the value
    InteractionEvent(user_id="u", item_id="i", context={"x": "a" * (MAX_CONTEXT_BYTES - 8)})
    for context in (
        {"x": "a" * (MAX_CONTEXT_BYTES - 7)},
        {"x": "é" * (MAX_CONTEXT_BYTES // 2)},  # counted in UTF-8 bytes, not characters
        {"x": [{"y": list(range(100))}] * 100},  # nesting counts too
    ):
        with pytest.raises(ValidationError) as raised:
            InteractionEvent(user_id="u", item_id="i", context=context)
        [error] = raised.value.errors()
        assert error["loc"] == ("context",)
        assert f"at most {MAX_CONTEXT_BYTES}" in error["msg"]


def _nested(depth: int) -> dict[str, object]:
    """A context whose values nest ``depth`` containers deep (the context included)."""
    value: object = []
    for _ in range(depth - 2):
        value = [value]
    return {"x": value}


def test_every_context_the_api_accepts_decodes_back_from_the_log() -> None:
    # The log's decoder stops at 200 levels of nesting: a deeper context was accepted
    # (202), then dead-lettered by the stream processor, never applied.
    deepest = InteractionEvent(user_id="u", item_id="i", context=_nested(MAX_CONTEXT_DEPTH))
    decoded = decode_event(encode_event(deepest))
    assert decoded.model_dump() == deepest.model_dump()
    for depth in (MAX_CONTEXT_DEPTH + 1, 200, 253):
        with pytest.raises(ValidationError) as raised:
            InteractionEvent(user_id="u", item_id="i", context=_nested(depth))
        [error] = raised.value.errors()
        assert error["loc"] == ("context",)
        assert f"at most {MAX_CONTEXT_DEPTH} levels" in error["msg"]


def test_the_largest_valid_event_stays_far_below_the_logs_record_limit() -> None:
    largest = InteractionEvent(
        event_id="\x00" * 128,  # escaped in JSON: 6 bytes each
        user_id="字" * 85,  # ids are at most 256 UTF-8 bytes: 3 bytes each
        item_id="𝄞" * 64,  # 4 bytes each
        type="rating",
        value=-123456.789,
        context={"x": "a" * (MAX_CONTEXT_BYTES - 8)},
    )
    assert len(encode_event(largest)) < 12 * 1024  # Kafka's default is 1 MB


def test_a_stored_event_with_a_context_over_the_limit_still_decodes() -> None:
    # accepted before the limit existed: it is on the log, and must still be applied
    stored = (
        b'{"event_id":"old","user_id":"u","item_id":"i","type":"view","timestamp":1.0,'
        b'"value":null,"context":{"x":"' + b"a" * 20_000 + b'"}}'
    )
    assert decode_event(stored).event_id == "old"
    [event] = decode_events([stored])
    assert isinstance(event, InteractionEvent) and event.event_id == "old"


def test_a_stored_event_with_an_id_a_newer_rule_refuses_still_decodes() -> None:
    # accepted before non-breaking spaces were refused in ids: it must still be applied
    stored = (
        b'{"event_id":"e","user_id":"jos\\u00e9\\u00a0m","item_id":"i","type":"view",'
        b'"timestamp":1.0,"value":null,"context":{}}'
    )
    assert decode_event(stored).user_id == "jos\u00e9\u00a0m"
    with pytest.raises(ValidationError, match="user_id"):  # refused at acceptance
        InteractionEvent(user_id="jos\u00e9\u00a0m", item_id="i")


def test_a_stored_event_is_refused_only_when_no_clock_drift_explains_its_timestamp() -> None:
    def stored(timestamp: float) -> bytes:
        return b'{"event_id":"e","user_id":"u","item_id":"i","timestamp":%.3f}' % timestamp

    now = time.time()
    assert decode_event(stored(now + MAX_STORED_SKEW_SECONDS - 60)).timestamp > now
    with pytest.raises(EventDecodeError, match="timestamp is more than a day ahead"):
        decode_event(stored(now + MAX_STORED_SKEW_SECONDS + 60))


def test_a_stored_event_with_a_field_this_version_does_not_know_still_decodes() -> None:
    # a newer API (rolling upgrade) may write fields older processors have never seen:
    # dead-lettering them would drop accepted events until every processor upgraded
    event = InteractionEvent(user_id="u", item_id="i", event_id="e", timestamp=1e9)
    record = orjson.loads(encode_event(event)) | {"session_id": "s-1"}

    decoded = decode_event(orjson.dumps(record))

    assert decoded.user_id == "u" and decoded.event_id == "e"
    with pytest.raises(ValidationError, match="session_id"):
        InteractionEvent.model_validate(record)  # the API still refuses it from a client


def test_a_record_without_a_value_is_named_as_such() -> None:
    # a Kafka tombstone reaches the decoder as b"": the dead letter said only
    # "EOF while parsing a value"
    with pytest.raises(EventDecodeError, match="no value"):
        decode_event(b"")
