"""Events: the interaction event schema, its wire format, the log protocol, the processor."""

from mlrec.events.log import (
    DLQ_TOPIC,
    INTERACTIONS_TOPIC,
    MODELS_PROMOTED_TOPIC,
    EventConsumer,
    EventFollower,
    EventProducer,
    LogRecord,
)
from mlrec.events.schemas import EVENT_WEIGHTS, EventType, InteractionEvent
from mlrec.events.serde import EventDecodeError, decode_event, encode_event, event_key

__all__ = [
    "DLQ_TOPIC",
    "EVENT_WEIGHTS",
    "INTERACTIONS_TOPIC",
    "MODELS_PROMOTED_TOPIC",
    "EventConsumer",
    "EventDecodeError",
    "EventFollower",
    "EventProducer",
    "EventType",
    "InteractionEvent",
    "LogRecord",
    "decode_event",
    "encode_event",
    "event_key",
]
