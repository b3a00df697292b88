"""The recommendation API application: wiring, error mapping, metrics, lifecycle.

``create_app()`` builds everything from :class:`ApiSettings` at start-up; tests pass
their own ``state`` (or override dependencies) instead.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlrec.backends.factory import (
    open_artifact_store,
    open_event_log,
    open_feature_registry,
    open_model_registry,
    open_online_store,
)
from mlrec.backends.spool import DurableProducer
from mlrec.core.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    MlrecError,
    NotFoundError,
    ValidationError,
)
from mlrec.events.log import INTERACTIONS_TOPIC, MODELS_PROMOTED_TOPIC, EventProducer
from mlrec.events.processor import StreamProcessor
from mlrec.features.builtin import BUILTIN_VIEWS
from mlrec.features.realtime import RealtimeFeatures
from mlrec.features.store import FeatureStore
from mlrec.services.api.batching import ScoringBatcher
from mlrec.services.api.config import ApiSettings, get_settings
from mlrec.services.api.model_server import ModelServer
from mlrec.services.api.promotions import PromotionListener
from mlrec.services.api.retention import LogRetention
from mlrec.services.api.routes import events, features, health, items, recommendations
from mlrec.services.api.service import RecommendationService
from mlrec.services.api.state import ApiState
from mlrec.services.api.topics import TopicSetup
from mlrec.services.stream import realtime_sink

__all__ = ["build_state", "create_app"]

log = logging.getLogger(__name__)

REQUEST_SECONDS = Histogram(
    "mlrec_api_request_duration_seconds",
    "HTTP request latency by route.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SPOOL_SLOTS = 64


def _durable_producer(primary: EventProducer, settings: ApiSettings) -> DurableProducer:
    # Each process (uvicorn worker) needs a spool of its own; a restarted process takes
    # over any free slot and replays what a previous one left there, and adopts the
    # slots no process holds (after a scale-down, fewer workers than slots with data).
    slots = [settings.spool_dir / f"slot-{slot:02d}" for slot in range(SPOOL_SLOTS)]

    def orphans() -> list[Path]:
        return [slot for slot in slots if slot.is_dir()]

    last: ConfigurationError | None = None
    for slot in slots:
        try:
            return DurableProducer(primary, slot, orphans=orphans)
        except ConfigurationError as exc:
            last = exc
    raise ConfigurationError(f"no free spool slot under {settings.spool_dir}: {last}")


def build_state(settings: ApiSettings) -> ApiState:
    """Connect to (or create) everything the API needs, from settings."""
    database = settings.resolved_database_url
    models = ModelServer(
        open_model_registry(database),
        open_artifact_store(database, migrate=False),
        settings.resolved_model_cache_dir,
        settings.model_name,
        settings.score_cache_mb << 20,
    )
    models.refresh()
    models.start(settings.model_poll_seconds)
    online = open_online_store(settings.resolved_online_store_url)
    views = [registered.view for registered in open_feature_registry(database).list_views()]
    store = FeatureStore(online, views or BUILTIN_VIEWS)
    realtime = RealtimeFeatures(online)
    event_log = open_event_log(
        settings.kafka_bootstrap_servers,
        settings.data_dir / "events.db",
        settings.kafka_partitions,
    )
    topics = TopicSetup(event_log)
    topics.start()
    retention = LogRetention(event_log, settings.event_retention_hours * 3600)
    retention.start()
    producer = _durable_producer(event_log.producer("mlrec-api"), settings)
    producer.start()
    listener = PromotionListener(lambda: event_log.follower([MODELS_PROMOTED_TOPIC]), models)
    listener.start()
    processor = None
    closers: list[Callable[[], None]] = [
        topics.stop,
        retention.stop,
        listener.stop,
        producer.close,
        online.close,
    ]
    if not event_log.is_kafka and settings.embedded_stream:
        # every worker runs one; the embedded log lets one of them read at a time
        consumer = event_log.consumer("mlrec-stream", [INTERACTIONS_TOPIC])
        dead_letters = event_log.producer("mlrec-dlq")
        processor = StreamProcessor(
            consumer, realtime_sink(realtime), dead_letters, poll_timeout=0.02, pipeline=True
        )
        closers += [consumer.close, dead_letters.close]  # after the processor stopped
    service = RecommendationService(
        models,
        realtime,
        ScoringBatcher(settings.batch_size, settings.batch_wait_ms / 1000.0),
        settings.history_limit,
    )
    state = ApiState(settings, models, store, realtime, service, producer, processor, topics)
    state.closers.extend(closers)
    state.start_processor()
    return state


_VARY_ORIGIN = (b"vary", b"Origin")


class HttpEdge:
    """Pure ASGI middleware: request timing by route and status, and CORS.

    Only requests that carry an ``Origin`` header (browsers, cross-origin) go through
    Starlette's ``CORSMiddleware``; the others, the bulk of service-to-service
    traffic, just get the ``Vary: Origin`` it would add, from the one ``send`` wrapper
    that also records the status (a profile of the hot route showed the CORS wrapper's
    header rewriting on every response). Starlette's ``BaseHTTPMiddleware`` would
    cost far more.
    """

    def __init__(self, app: ASGIApp, cors_origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app, allow_origins=cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
        # bounded: route templates (not raw paths) x methods x statuses
        self._timers: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        cross_origin = any(name == b"origin" for name, _ in scope["headers"])

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if not cross_origin:  # a copy: the response may reuse its header list
                    message = {**message, "headers": [*message.get("headers", ()), _VARY_ORIGIN]}
            await send(message)

        route = None
        try:
            user_id = None if cross_origin else recommendations.direct_user_id(scope)
            if user_id is not None and await recommendations.answer_directly(
                scope, send, user_id, [_VARY_ORIGIN]
            ):
                route, status = recommendations.USER_ROUTE, 200
            else:
                await (self.cors if cross_origin else self.app)(scope, receive, send_and_record)
        finally:
            if route is None:
                route = getattr(scope.get("route"), "path", "unmatched")
            key = (scope["method"], route, status)
            timer = self._timers.get(key)
            if timer is None:  # label lookups cost more than the observation: cache them
                timer = self._timers[key] = REQUEST_SECONDS.labels(key[0], key[1], str(status))
            timer.observe(time.perf_counter() - started)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def create_app(settings: ApiSettings | None = None, state: ApiState | None = None) -> FastAPI:
    """The FastAPI application.

    Args:
        settings: defaults to the environment (``MLREC_*``).
        state: prebuilt collaborators (tests); built at start-up when omitted.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = state or build_state(settings or get_settings())
        app.state.mlrec = built
        gc.freeze()  # the model and indexes live as long as the process: stop rescanning them
        # A request allocates a few hundred short-lived objects: with the default
        # young-generation threshold (700) collections ran several times per request;
        # raising it measured ~10% more throughput on the hot route (bench/api.py).
        thresholds = gc.get_threshold()
        gc.set_threshold(20_000, 10, 10)
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)  # the process may go on (tests, embedded use)
            await built.service.close()
            if state is None:
                built.close()

    config = settings or (state.settings if state else get_settings())
    app = FastAPI(
        title="mlrec recommendation API",
        version="0.1.0",
        description="Real-time recommendations, similar items, event ingestion, online features.",
        lifespan=lifespan,
        debug=config.debug,
    )
    app.add_middleware(HttpEdge, cors_origins=config.cors_origins)

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(ValidationError)
    async def invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(BackendUnavailableError)
    async def unavailable(_: Request, exc: BackendUnavailableError) -> JSONResponse:
        return _error(503, f"dependency unavailable: {exc}")

    @app.exception_handler(BackendError)
    async def backend_refused(_: Request, exc: BackendError) -> JSONResponse:
        # reachable but refusing (e.g. Kafka denies the topic): not the client's fault
        return _error(502, f"dependency refused the request: {exc}")

    @app.exception_handler(MlrecError)
    async def other(_: Request, exc: MlrecError) -> JSONResponse:
        return _error(400, str(exc))

    recommendations.add_user_route(app)
    for router in (
        recommendations.router,
        items.router,
        events.router,
        features.router,
        health.router,
    ):
        app.include_router(router)
    return app
