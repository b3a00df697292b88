"""``/v1/events``: interaction ingestion, acknowledged only once durable."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, status
from fastapi.concurrency import run_in_threadpool
from prometheus_client import Counter

from mlrec.events.log import INTERACTIONS_TOPIC
from mlrec.events.schemas import InteractionEvent
from mlrec.events.serde import encode_event, event_key
from mlrec.services.api.deps import ProducerDep
from mlrec.services.api.schemas import EventBatch, EventsAccepted

router = APIRouter(prefix="/v1/events", tags=["events"])

ACCEPTED = Counter("mlrec_api_events_accepted_total", "Events accepted by the API.", ["type"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EventsAccepted)
async def post_events(
    body: Annotated[EventBatch | InteractionEvent, Body()], producer: ProducerDep
) -> EventsAccepted:
    """Accept one event or ``{"events": [...]}`` (up to 1000).

    202 is returned only after Kafka acknowledged every event (acks=all), or, when
    Kafka is down, after they were fsynced to the local spool that replays them.
    Events are applied once per ``event_id``.
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
