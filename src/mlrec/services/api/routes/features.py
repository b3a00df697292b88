"""``/v1/features``: online feature reads, and admin writes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from fastapi.concurrency import run_in_threadpool

from mlrec.core.errors import BackendUnavailableError
from mlrec.features.definitions import NAME
from mlrec.features.store import OnlineFeatures
from mlrec.services.api.deps import AdminDep, FeatureStoreDep, StateDep
from mlrec.services.api.errors import JsonBodyRoute
from mlrec.services.api.schemas import (
    FeatureBatchRequest,
    FeatureValuesPublic,
    FeatureWriteRequest,
    error_responses,
)
from mlrec.services.api.state import ApiState

router = APIRouter(prefix="/v1/features", tags=["features"], route_class=JsonBodyRoute)

VIEW_NAME_PATTERN = NAME.pattern

ViewName = Annotated[
    str,
    Path(min_length=1, max_length=63, pattern=VIEW_NAME_PATTERN, description="Feature view name"),
]


def _public(view: str, result: OnlineFeatures) -> FeatureValuesPublic:
    entities: list[dict[str, Any]] = []
    prefix = len(view) + 1
    for entity_id, row, missing, stale in zip(
        result.entity_ids, result.values, result.missing, result.stale, strict=True
    ):
        values = {ref[prefix:]: value for ref, value in zip(result.refs, row, strict=True)}
        entities.append(
            {
                "entity_id": entity_id,
                "values": values,
                "missing": [ref[prefix:] for ref in missing],
                "stale": [ref[prefix:] for ref in stale],
            }
        )
    return FeatureValuesPublic(view=view, entities=entities)


async def _read(state: ApiState, refs: str | list[str], entity_ids: list[str]) -> OnlineFeatures:
    """Online values, or a 503 at once while the store was just found unavailable."""
    breaker = state.feature_reads
    if breaker.open:
        raise BackendUnavailableError(f"{breaker.last_error} (not retried for a second)")
    try:
        result = await run_in_threadpool(state.features.get_online_features, refs, entity_ids)
    except BackendUnavailableError as exc:
        breaker.failure(str(exc))
        raise
    breaker.success()
    return result


@router.get(
    "/{view}/{entity_id}", response_model=FeatureValuesPublic, responses=error_responses(404, 503)
)
async def get_features(
    view: ViewName,
    entity_id: Annotated[str, Path(min_length=1, max_length=256)],
    state: StateDep,
) -> FeatureValuesPublic:
    """Latest values of every feature of ``view`` for one entity; values older than the
    view's TTL are reported ``stale`` and replaced by the feature default."""
    return _public(view, await _read(state, view, [entity_id]))


@router.post(
    "/{view}/batch",
    response_model=FeatureValuesPublic,
    responses=error_responses(404, 413, 415, 503),
)
async def get_features_batch(
    view: ViewName, body: FeatureBatchRequest, state: StateDep
) -> FeatureValuesPublic:
    """Values for up to 1000 entities, optionally only some features."""
    refs: str | list[str] = [f"{view}:{name}" for name in body.features] if body.features else view
    return _public(view, await _read(state, refs, body.entity_ids))


@router.put(
    "/{view}",
    status_code=status.HTTP_200_OK,
    responses=error_responses(401, 403, 404, 413, 415, 503),
)
async def put_features(
    view: ViewName, body: FeatureWriteRequest, store: FeatureStoreDep, _admin: AdminDep
) -> dict[str, int]:
    """Write ``{entity_id: {feature: value}}`` (admin token required). Every row is
    validated first: a bad value rejects the whole request and nothing is written.

    ``skipped`` counts rows older (by ``timestamp``) than the entity's stored row: the
    last write by time wins, so they change nothing."""
    written = await run_in_threadpool(store.write_features, view, body.rows, body.timestamp)
    return {"written": written, "skipped": len(body.rows) - written}
