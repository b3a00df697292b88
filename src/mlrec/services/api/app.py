"""The recommendation API application: wiring, error mapping, metrics, lifecycle.

``create_app()`` builds everything from :class:`ApiSettings` at start-up; tests pass
their own ``state`` (or override dependencies) instead.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from mlrec.backends.factory import (
    open_artifact_store,
    open_event_log,
    open_feature_registry,
    open_model_registry,
    open_online_store,
)
from mlrec.backends.spool import DurableProducer
from mlrec.core.errors import BackendUnavailableError, ConfigurationError
from mlrec.events.log import INTERACTIONS_TOPIC, MODELS_PROMOTED_TOPIC, EventProducer
from mlrec.events.processor import StreamProcessor
from mlrec.features.builtin import BUILTIN_VIEWS
from mlrec.features.definitions import FeatureView
from mlrec.features.realtime import RealtimeFeatures
from mlrec.features.registry import FeatureRegistry
from mlrec.features.store import FeatureStore
from mlrec.services.api.batching import ScoringBatcher
from mlrec.services.api.config import ApiSettings, get_settings
from mlrec.services.api.edge import HttpEdge
from mlrec.services.api.errors import install_error_handlers
from mlrec.services.api.feature_views import FeatureViewFollower
from mlrec.services.api.model_server import ModelServer
from mlrec.services.api.promotions import PromotionListener
from mlrec.services.api.retention import LogRetention
from mlrec.services.api.routes import events, features, health, items, recommendations
from mlrec.services.api.service import RecommendationService
from mlrec.services.api.startup import schema_setup, topic_setup
from mlrec.services.api.state import ApiState
from mlrec.services.stream import realtime_sink

__all__ = ["build_state", "create_app"]

log = logging.getLogger(__name__)

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


def _registered_views(registry: FeatureRegistry) -> list[FeatureView]:
    """The views of the feature registry; none while it cannot be reached (the
    follower's poll picks them up when it answers)."""
    try:
        return [registered.view for registered in registry.list_views()]
    except BackendUnavailableError as exc:
        log.warning("cannot read the feature registry (%s); serving the built-in views", exc)
        return []


def build_state(settings: ApiSettings) -> ApiState:
    """Connect to (or create) everything the API needs, from settings.

    Everything but the metadata database must be usable; while that one cannot be
    reached, the API starts without a model (popular items, degraded; ``/ready``
    says why) and the registry poll loads it when the database answers.
    """
    database = settings.resolved_database_url
    schema = schema_setup(database)
    schema.start()
    models = ModelServer(
        open_model_registry(database, migrate=False),
        open_artifact_store(database, migrate=False),
        settings.resolved_model_cache_dir,
        settings.model_name,
        settings.score_cache_mb << 20,
    )
    models.refresh()
    models.start(settings.model_poll_seconds)
    online = open_online_store(
        settings.resolved_online_store_url, redis_timeout_s=settings.feature_timeout_seconds
    )
    feature_registry = open_feature_registry(database, migrate=False)  # the same database
    store = FeatureStore(online, _registered_views(feature_registry) or BUILTIN_VIEWS)
    feature_views = FeatureViewFollower(feature_registry, store)
    feature_views.start(settings.model_poll_seconds)
    realtime = RealtimeFeatures(online)
    event_log = open_event_log(
        settings.kafka_bootstrap_servers,
        settings.data_dir / "events.db",
        settings.kafka_partitions,
    )
    topics = topic_setup(event_log)
    topics.start()
    retention = LogRetention(event_log, settings.event_retention_hours * 3600)
    retention.start()
    producer = _durable_producer(event_log.producer("mlrec-api"), settings)
    producer.start()
    listener = PromotionListener(lambda: event_log.follower([MODELS_PROMOTED_TOPIC]), models)
    listener.start()
    processor = None
    closers: list[Callable[[], None]] = [
        schema.stop,
        feature_views.stop,
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


class _EdgeFirstApp(FastAPI):
    """FastAPI behind its HTTP edge (:class:`HttpEdge`), which sees each request first.

    The edge answers the hottest route itself, so it sits in front of FastAPI's own
    per-request layers (telemetry check, error and body-limit middleware: ~10% of
    the hot route's event-loop time in a profile) rather than inside them. Every
    other request goes through the edge to the whole FastAPI stack, as a middleware
    would pass it on; an error there is still answered by FastAPI's 500 handler.
    """

    edge: HttpEdge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["app"] = self  # as Starlette sets it: the hot route finds the state there
            await self.edge(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


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
    app = _EdgeFirstApp(
        title="mlrec recommendation API",
        version="0.1.0",
        description="Real-time recommendations, similar items, event ingestion, online features.",
        lifespan=lifespan,
        debug=config.debug,
    )

    install_error_handlers(app)

    recommendations.add_user_route(app)
    routers = (
        recommendations.router,
        items.router,
        events.router,
        features.router,
        health.router,
    )
    for router in routers:
        app.include_router(router)
    # the routes as declared (FastAPI keeps included routers as opaque groups), so the
    # edge can name the route of a request it refuses before routing
    declared = [*app.router.routes, *(r for router in routers for r in router.routes)]
    app.edge = HttpEdge(
        partial(FastAPI.__call__, app), config.cors_origins, config.max_request_bytes, declared
    )
    return app
