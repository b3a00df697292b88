"""Wire format of events on the log: compact JSON, keyed by user id.

Keying by user keeps one user's events in one partition, so they are applied in
order by one consumer.
"""

from __future__ import annotations

import pydantic

from mlrec.core.errors import ValidationError
from mlrec.events.schemas import InteractionEvent, StoredInteractionEvent

__all__ = ["EventDecodeError", "decode_event", "decode_events", "encode_event", "event_key"]


class EventDecodeError(ValidationError):
    """A log record that is not a valid event (it goes to the dead-letter topic)."""


def encode_event(event: InteractionEvent) -> bytes:
    """Serialize an event for the log."""
    return event.model_dump_json(exclude_defaults=False).encode()


def event_key(event: InteractionEvent) -> bytes:
    """The partitioning key: the user id."""
    return event.user_id.encode()


def decode_event(payload: bytes) -> InteractionEvent:
    """Parse a log record; :class:`EventDecodeError` says what is wrong with it.

    The acceptance-time limits (``context`` size) are not applied again: the record
    was accepted already.
    """
    if not payload:  # named, rather than the JSON parser's "EOF while parsing"
        raise EventDecodeError("invalid event: the record has no value (a tombstone or empty)")
    try:
        return StoredInteractionEvent.model_validate_json(payload)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'event'}: {error['msg']}"
            for error in exc.errors()
        )
        raise EventDecodeError(f"invalid event: {problems}") from None


def decode_events(payloads: list[bytes]) -> list[InteractionEvent | EventDecodeError]:
    """Parse many records; each position holds its record's event or why it is invalid.

    Each record is parsed on its own. (Parsing the records joined into one JSON array
    is no faster, and not sound: two invalid records, one ending inside a value that
    the next one closes, parse as events that neither record holds.)
    """
    results: list[InteractionEvent | EventDecodeError] = []
    for payload in payloads:
        try:
            results.append(decode_event(payload))
        except EventDecodeError as exc:
            results.append(exc)
    return results
