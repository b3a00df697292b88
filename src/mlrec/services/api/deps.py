"""FastAPI dependencies: typed aliases routes declare, swappable in tests.

They are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in a thread
pool, and three thread hops per request cost more than the recommendation itself.
The exception is :func:`require_admin` (:data:`AdminDep`), a plain ``def`` used only by
the admin feature writes, which take that hop.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from mlrec.events.log import EventProducer
from mlrec.features.store import FeatureStore
from mlrec.services.api.config import ApiSettings
from mlrec.services.api.service import RecommendationService
from mlrec.services.api.state import ApiState

__all__ = [
    "AdminDep",
    "FeatureStoreDep",
    "ProducerDep",
    "ServiceDep",
    "SettingsDep",
    "StateDep",
    "state_of",
]


def state_of(request: Request) -> ApiState:
    """The application's :class:`ApiState` (what :data:`StateDep` injects)."""
    state: ApiState = request.app.state.mlrec
    return state


async def get_state(request: Request) -> ApiState:
    return state_of(request)


StateDep = Annotated[ApiState, Depends(get_state)]


async def get_service(state: StateDep) -> RecommendationService:
    return state.service


async def get_feature_store(state: StateDep) -> FeatureStore:
    return state.features


async def get_producer(state: StateDep) -> EventProducer:
    return state.producer


async def get_api_settings(state: StateDep) -> ApiSettings:
    return state.settings


ServiceDep = Annotated[RecommendationService, Depends(get_service)]
FeatureStoreDep = Annotated[FeatureStore, Depends(get_feature_store)]
ProducerDep = Annotated[EventProducer, Depends(get_producer)]
SettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]


def require_admin(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Admin endpoints need ``Authorization: Bearer <MLREC_ADMIN_TOKEN>``."""
    token = settings.admin_token
    if not token:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "admin endpoints are disabled: set MLREC_ADMIN_TOKEN"
        )
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong admin token",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Annotated[None, Depends(require_admin)]
