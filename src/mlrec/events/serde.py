"""Wire format of events on the log: compact JSON, keyed by user id.

Keying by user keeps one user's events in one partition, so they are applied in
order by one consumer.
"""

from __future__ import annotations

import pydantic

from mlrec.core.errors import ValidationError
from mlrec.events.schemas import InteractionEvent, StoredInteractionEvent

__all__ = ["EventDecodeError", "decode_event", "decode_events", "encode_event", "event_key"]

_BATCH = pydantic.TypeAdapter(list[StoredInteractionEvent])
# Records on the log were accepted already: decode them without the acceptance-time
# limits (context size, clock skew, id characters), so an event accepted before a
# limit existed still applies (see StoredInteractionEvent).


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
    try:
        return StoredInteractionEvent.model_validate_json(payload)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'event'}: {error['msg']}"
            for error in exc.errors()
        )
        raise EventDecodeError(f"invalid event: {problems}") from None


def decode_events(payloads: list[bytes]) -> list[InteractionEvent | EventDecodeError]:
    """Parse many records at once; each position holds the event or why it is invalid.

    The whole batch is validated in one call (several times faster than one call
    per record); only when that fails are records parsed one by one to find the bad.
    The batch is the records' bytes joined by commas, so it also falls back when it
    parsed to a different number of events than there are records (an empty record,
    or one holding ``{...},{...}``): events and records would not line up.
    """
    if not payloads:
        return []
    try:
        events = _BATCH.validate_json(b"[" + b",".join(payloads) + b"]")
    except (pydantic.ValidationError, ValueError):
        events = None
    if events is not None and len(events) == len(payloads):
        return list(events)
    results: list[InteractionEvent | EventDecodeError] = []
    for payload in payloads:
        try:
            results.append(decode_event(payload))
        except EventDecodeError as exc:
            results.append(exc)
    return results
