"""``/v1/events``: interaction ingestion, acknowledged only once durable."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, status
from fastapi.concurrency import run_in_threadpool
from prometheus_client import Counter
from pydantic import PlainValidator
from pydantic_core import PydanticCustomError

from mlrec.events.log import INTERACTIONS_TOPIC
from mlrec.events.schemas import InteractionEvent
from mlrec.events.serde import encode_event, event_key
from mlrec.services.api.deps import ProducerDep
from mlrec.services.api.errors import JsonBodyRoute
from mlrec.services.api.schemas import EventBatch, EventsAccepted, error_responses

router = APIRouter(prefix="/v1/events", tags=["events"], route_class=JsonBodyRoute)

ACCEPTED = Counter("mlrec_api_events_accepted_total", "Events accepted by the API.", ["type"])


def _one_shape(body: Any) -> EventBatch | InteractionEvent:
    """``body`` validated as the one shape it has: an object with ``events`` is a batch.

    Validated as a plain union, a body would be tried as both shapes and a 422 would
    list the errors of both (with locations naming the union's members); here it
    lists only its own shape's, located in the body (``["body", "events", 1, ...]``).
    """
    if isinstance(body, EventBatch | InteractionEvent):
        return body
    if not isinstance(body, dict):
        raise PydanticCustomError(
            "model_type", 'Input should be an event object or {"events": [<event>, ...]}'
        )
    if "events" in body:
        return EventBatch.model_validate(body)
    return InteractionEvent.model_validate(body)


EventsBody = Annotated[
    EventBatch | InteractionEvent,
    PlainValidator(_one_shape, json_schema_input_type=EventBatch | InteractionEvent),
]
"""One event or a batch (``{"events": [...]}``), both documented in the OpenAPI schema."""


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventsAccepted,
    responses=error_responses(413, 415),
)
async def post_events(body: Annotated[EventsBody, Body()], producer: ProducerDep) -> EventsAccepted:
    """Accept one event or ``{"events": [...]}`` (up to 1000).

    202 is returned only after Kafka acknowledged every event (acks=all), or, when
    Kafka is down, after they were fsynced to the local spool that replays them.
    Events are applied once per ``event_id``. An event's size is bounded (``context``
    up to 8 KiB of JSON, 422 beyond), so that Kafka never refuses one for its size:
    an event the spool accepted must be one Kafka takes.
    """
    events = body.events if isinstance(body, EventBatch) else [body]
    records = [(event_key(e), encode_event(e)) for e in events]
    await run_in_threadpool(producer.produce, INTERACTIONS_TOPIC, records)
    for event in events:
        ACCEPTED.labels(event.type.value).inc()
    return EventsAccepted(
        accepted=len(events),
        event_ids=[e.event_id for e in events],
        spooled=bool(getattr(producer, "degraded", False)),
    )
