"""``/health`` (liveness), ``/ready`` (readiness) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import os
from pathlib import Path

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
    """Ready when a model is loaded; dependencies that are down, or a production
    version that could not be loaded (the previous one serving), are reported
    (degraded)."""
    served = state.models.current
    model_error = state.models.last_error
    if served is None:
        checks = {"model": model_error or "no model loaded"}
    elif model_error:
        # still answering with the loaded model, but not with the one the registry wants
        checks = {"model": f"serving {served.version.ref}; {model_error}"}
    else:
        checks = {"model": "ok"}
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
    elif not online_ok or degraded or model_error:
        status_text = "degraded"
    else:
        status_text = "ok"
    body = HealthPublic(
        status=status_text,
        checks=checks,
        model=model_public(served),
    )
    return JSONResponse(body.model_dump(), status_code=503 if served is None else 200)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to forget
    return True


def forget_dead_workers(directory: str) -> None:
    """Drop the gauges of worker processes that are gone (crashed or restarted).

    Each worker writes its own files; a gauge's value is that of the live workers
    (``live*`` modes), but only once a dead worker's files are removed, which no one
    else does: uvicorn restarts a worker without a hook. Counters and histograms stay
    (a total must not fall back when a worker restarts).
    """
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            # what multiprocess.mark_process_dead does, but another worker's scrape may
            # remove the file first
            path.unlink(missing_ok=True)


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus exposition of every mlrec metric (of all workers, when several run)."""
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        forget_dead_workers(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
