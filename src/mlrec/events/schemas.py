"""Interaction events: what clients post and what flows through ``mlrec.interactions``."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Annotated, Any, ClassVar

import pydantic_core
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from mlrec.core.clock import MAX_CLOCK_SKEW_SECONDS
from mlrec.core.ids import ENTITY_ID_PATTERN, entity_id_problem

__all__ = [
    "EVENT_WEIGHTS",
    "MAX_CONTEXT_BYTES",
    "MAX_CONTEXT_DEPTH",
    "MAX_EVENT_WEIGHT",
    "MAX_STORED_SKEW_SECONDS",
    "EntityId",
    "EventType",
    "InteractionEvent",
    "StoredInteractionEvent",
]


def _valid_entity_id(value: str) -> str:
    problem = entity_id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


EntityId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=ENTITY_ID_PATTERN),
    AfterValidator(_valid_entity_id),
]
"""An external user or item id: 1-256 characters and at most 256 UTF-8 bytes (the
rule of :func:`~mlrec.core.ids.entity_id_problem`), no whitespace or control
characters."""


class EventType(StrEnum):
    """Kinds of interaction, from weakest to strongest signal."""

    VIEW = "view"
    CLICK = "click"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"
    RATING = "rating"


EVENT_WEIGHTS: dict[EventType, float] = {
    EventType.VIEW: 1.0,
    EventType.CLICK: 2.0,
    EventType.ADD_TO_CART: 3.0,
    EventType.PURCHASE: 5.0,
}
"""Implicit-feedback strength of each type; a rating weighs its value."""

MAX_EVENT_WEIGHT = 10.0
"""Most one event weighs (two purchases, a rating of 10). Live item popularity, which
every user's popular list and cold-start fallback share, sums event weights: with
``value`` up to 1e6 multiplying them, one event from any client counted as millions
of interactions and put any item id first for everyone for weeks."""

MAX_CONTEXT_BYTES = 8192
"""Largest ``context`` of an event: 8 KiB of (compact, UTF-8) JSON. With the ids'
bounds (``event_id`` 128 characters, user and item ids 256 each) an encoded event
stays under 12 KiB, far below what the event log takes per record (Kafka's
default is 1 MB): an event the API accepts is never refused by the log for its size."""

MAX_STORED_SKEW_SECONDS = 86400.0
"""How far ahead of the reader's clock a stored event's ``timestamp`` may be: a day,
far more than clocks drift (the API refuses 5 minutes ahead of its own). Further
ahead, the event is dead-lettered: its time-decayed popularity would outweigh every
real event for years, and a few years ahead no longer fits in a float once decayed to
now (reading the popularity ranking would fail)."""

MAX_CONTEXT_DEPTH = 32
"""Deepest nesting of ``context``, counting the context object as level 1. The log's
decoder (pydantic's JSON parser) stops at 200 levels: a deeper context, accepted,
would be dead-lettered by the stream processor rather than applied."""


def _depth(value: Any) -> int:
    """Levels of nested objects and arrays in ``value`` (a scalar is 0), iteratively."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


class InteractionEvent(BaseModel):
    """One interaction of a user with an item.

    ``event_id`` makes delivery idempotent: the stream processor applies an id once.
    When the client sends none, the API assigns one at acceptance.

    ``context`` is free-form, up to :data:`MAX_CONTEXT_BYTES` as JSON and
    :data:`MAX_CONTEXT_DEPTH` levels deep (checked when an
    event is accepted, not when a stored one is read back: see
    :class:`StoredInteractionEvent`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)
    #: Check the limits that apply when an event is accepted (size, clock skew).
    _acceptance_checks: ClassVar[bool] = True

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        default_factory=lambda: uuid.uuid4().hex
    )
    user_id: EntityId
    item_id: EntityId
    type: EventType = EventType.VIEW
    # finite: JSON's Infinity passes ``ge=0``, and no sink can apply it
    timestamp: float = Field(default_factory=time.time, ge=0, allow_inf_nan=False)
    # validate_default: the rating check below must also run when ``value`` is omitted
    value: float | None = Field(default=None, ge=-1e6, le=1e6, validate_default=True)
    context: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            f"Free-form attributes, at most {MAX_CONTEXT_BYTES} bytes as compact JSON"
            f" and {MAX_CONTEXT_DEPTH} levels of nested objects and arrays."
        ),
    )

    @field_validator("value")
    @classmethod
    def _rating_has_value(cls, value: float | None, info: ValidationInfo) -> float | None:
        # a field validator, so that the error is reported at ``value``; ``type`` is
        # declared earlier, so it is in ``info.data`` unless it was invalid itself
        if value is None and info.data.get("type") is EventType.RATING:
            raise ValueError("a rating event needs a value")
        return value

    @field_validator("context")
    @classmethod
    def _context_is_bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value or not cls._acceptance_checks:
            return value
        depth = _depth(value)
        if depth > MAX_CONTEXT_DEPTH:
            raise ValueError(
                f"context nests too deeply: {depth} levels of objects and arrays,"
                f" at most {MAX_CONTEXT_DEPTH} levels"
            )
        size = len(pydantic_core.to_json(value))
        if size > MAX_CONTEXT_BYTES:
            raise ValueError(
                f"context is too large: {size} bytes as JSON, at most {MAX_CONTEXT_BYTES}"
            )
        return value

    @field_validator("timestamp")
    @classmethod
    def _not_in_the_future(cls, value: float) -> float:
        if cls._acceptance_checks:
            if value > time.time() + MAX_CLOCK_SKEW_SECONDS:
                raise ValueError("timestamp is in the future (more than 5 minutes ahead)")
        # a stored event read back by a processor whose clock runs behind the API's
        # must still be applied: only a timestamp no clock drift explains is refused
        elif value > time.time() + MAX_STORED_SKEW_SECONDS:
            raise ValueError("timestamp is more than a day ahead of this reader's clock")
        return value

    @property
    def weight(self) -> float:
        """Implicit-feedback strength: the type's weight, times ``value`` when that is
        positive (a quantity); for a rating, its value (at least 0.1); at most
        :data:`MAX_EVENT_WEIGHT` either way."""
        if self.type is EventType.RATING:
            weight = max(float(self.value or 0.0), 0.1)
        else:
            weight = EVENT_WEIGHTS[self.type] * (
                self.value if self.value and self.value > 0 else 1.0
            )
        return min(weight, MAX_EVENT_WEIGHT)


class StoredInteractionEvent(InteractionEvent):
    """An event read back from the log.

    It was checked when it was accepted, perhaps under older rules (a larger
    ``context``, ids with a non-breaking space), or by a host whose clock runs ahead:
    only its meaning is checked again (ids only for length, ``timestamp`` up to
    :data:`MAX_STORED_SKEW_SECONDS` ahead), so an accepted event is still applied
    after an upgrade, never dead-lettered. ``event_id`` is required: the API always
    writes it, and an id made up at each read would apply a redelivered record again.
    Fields it does not know are ignored (a tolerant reader): during a rolling upgrade
    a newer API may write fields that processors of this version have never seen.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, use_enum_values=False)
    _acceptance_checks: ClassVar[bool] = False

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    item_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
