"""``/health`` (liveness), ``/ready`` (readiness) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from mlrec.services.api.answers import model_public
from mlrec.services.api.deps import StateDep
from mlrec.services.api.schemas import HealthPublic

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthPublic)
async def health() -> HealthPublic:
    """The process is alive and serving HTTP."""
    return HealthPublic(status="ok")


@router.get("/ready", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
async def ready(state: StateDep) -> Response:
    """Ready when a model is loaded; dependencies that are down are reported (degraded)."""
    served = state.models.current
    checks = {"model": "ok" if served else (state.models.last_error or "no model loaded")}
    online_ok = await run_in_threadpool(state.features.online.ping)
    checks["feature_store"] = "ok" if online_ok else "unreachable"
    log_ok = await run_in_threadpool(state.producer.reachable)
    degraded = not log_ok or getattr(state.producer, "degraded", False)
    if not log_ok:
        checks["event_log"] = "unreachable: events are spooled to disk"
    else:
        checks["event_log"] = "spooling to disk (replaying)" if degraded else "ok"
    if state.topics is not None and not state.topics.done:
        degraded = True
        checks["event_log"] = f"topics not created yet, events are spooled: {state.topics.error}"
    if served is None:
        status_text = "unavailable"
    elif not online_ok or degraded:
        status_text = "degraded"
    else:
        status_text = "ok"
    body = HealthPublic(
        status=status_text,
        checks=checks,
        model=model_public(served),
    )
    return JSONResponse(body.model_dump(), status_code=503 if served is None else 200)


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus exposition of every mlrec metric (of all workers, when several run)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
