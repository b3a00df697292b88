"""``/v1/items``: similar items and popular items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool

from mlrec.events.schemas import EntityId
from mlrec.services.api.deps import ServiceDep, SettingsDep
from mlrec.services.api.params import k_over_limit
from mlrec.services.api.schemas import (
    FILTER_DESCRIPTION,
    K_DESCRIPTION,
    FilterText,
    ItemsPublic,
    error_responses,
)

router = APIRouter(prefix="/v1/items", tags=["items"])


@router.get("/popular", response_model=ItemsPublic)
async def popular_items(
    service: ServiceDep,
    settings: SettingsDep,
    k: Annotated[int, Query(ge=1, description=K_DESCRIPTION)] = 10,
    filter: Annotated[FilterText, Query(description=FILTER_DESCRIPTION)] = None,
) -> ItemsPublic:
    """The k most popular items now: live and training counts on one time-decayed scale."""
    if k > settings.max_k:
        raise k_over_limit(k, settings.max_k, "query")
    # live popularity is read from Redis: off the event loop
    return await run_in_threadpool(service.popular_public, k, filter)


@router.get("/{item_id}/similar", response_model=ItemsPublic, responses=error_responses(404))
async def similar_items(
    item_id: Annotated[EntityId, Path(description="Item id")],
    service: ServiceDep,
    settings: SettingsDep,
    k: Annotated[int, Query(ge=1, description=K_DESCRIPTION)] = 10,
) -> ItemsPublic:
    """The k items most similar to ``item_id``; 404 if the model has never seen it."""
    if k > settings.max_k:
        raise k_over_limit(k, settings.max_k, "query")
    # scoring is CPU work: off the event loop, which keeps serving other requests
    return await run_in_threadpool(service.similar, item_id, k)
