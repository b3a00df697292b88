"""``/v1/recommendations``: personalised top-k for known, new and anonymous users."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.types import Scope, Send

from mlrec.core.errors import MlrecError, ValidationError
from mlrec.services.api.answers import Recommendations
from mlrec.services.api.deps import ServiceDep, SettingsDep, state_of
from mlrec.services.api.params import openapi_parameters, parse_parameters
from mlrec.services.api.schemas import BatchRecommendationRequest, RecommendationsPublic
from mlrec.services.api.state import ApiState

router = APIRouter(prefix="/v1/recommendations", tags=["recommendations"])


class RecommendationPath(BaseModel):
    """Path of ``GET /v1/recommendations/{user_id}`` (see :mod:`..params`)."""

    user_id: str = Field(
        min_length=1, max_length=256, pattern=r"^[^\x00-\x20\x7f]+$", description="User id"
    )


class RecommendationQuery(BaseModel):
    """Query parameters of ``GET /v1/recommendations/{user_id}`` (see :mod:`..params`)."""

    k: int = Field(default=10, ge=1, le=1000, description="How many items")
    exclude_seen: bool = Field(default=True, description="Drop items the user interacted with")
    filter: str | None = Field(
        default=None, description="category:<name>[|<name>] or items:<id>[|<id>]"
    )


def add_user_route(app: FastAPI) -> None:
    """Register ``GET /v1/recommendations/{user_id}`` on ``app`` itself.

    Call it before including the routers. FastAPI matches the routes of an included
    router through per-request include machinery that measured ~30 µs a request on
    this route (a fifth of the framework's share of it); on the app it is matched
    first and directly.
    """
    app.add_api_route(
        USER_ROUTE,
        recommend_for_user,
        methods=["GET"],
        response_model=RecommendationsPublic,
        tags=["recommendations"],
        openapi_extra={
            "parameters": openapi_parameters(RecommendationPath, "path")
            + openapi_parameters(RecommendationQuery, "query")
        },
    )


async def recommend_for_user(request: Request) -> Response:
    """Top-k items for a user, from their training history plus live interactions.

    A user with no history gets popular items (``source: popular``). If the feature
    store or the model is unavailable the answer is ``degraded`` with reasons.
    """
    # The hottest route reads its query and collaborators from the request rather
    # than through FastAPI parameters and Depends (their resolution measured ~40% of
    # its time), and its answer, valid by construction, is serialised directly.
    path, query = parse_parameters(RecommendationPath, RecommendationQuery, request)
    answer = await _recommend(state_of(request), path, query)
    return Response(answer.json(), media_type="application/json")


async def _recommend(
    state: ApiState, path: RecommendationPath, query: RecommendationQuery
) -> Recommendations:
    if query.k > state.settings.max_k:
        raise ValidationError(f"k must be at most {state.settings.max_k}, got {query.k}")
    return await state.service.recommend(path.user_id, query.k, query.exclude_seen, query.filter)


USER_ROUTE = "/v1/recommendations/{user_id}"
_USER_PREFIX = USER_ROUTE.removesuffix("{user_id}")
_JSON = (b"content-type", b"application/json")


def direct_user_id(scope: Scope) -> str | None:
    """The user id if ``scope`` is a plain ``GET /v1/recommendations/{user_id}``."""
    path: str = scope["path"]
    if scope["method"] != "GET" or scope.get("root_path") or not path.startswith(_USER_PREFIX):
        return None
    user_id = path[len(_USER_PREFIX) :]
    return user_id if user_id and "/" not in user_id else None


async def answer_directly(
    scope: Scope, send: Send, user_id: str, extra_headers: list[tuple[bytes, bytes]]
) -> bool:
    """Answer ``GET /v1/recommendations/{user_id}`` below FastAPI's request stack.

    The hottest route's successful answers skip the framework's per-request layers
    (exception and exit-stack middleware, routing, request objects: together about
    as much CPU as the recommendation itself). Anything else returns False before
    sending a byte, and the caller hands the request to the app, where
    :func:`recommend_for_user` answers or reports the error with the same validation
    models, so error responses are FastAPI's own.
    """
    try:
        path = RecommendationPath.model_validate({"user_id": user_id})
        query = RecommendationQuery.model_validate(
            dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        )
        answer = await _recommend(scope["app"].state.mlrec, path, query)
    except (PydanticValidationError, MlrecError):
        return False
    body = answer.json()
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *extra_headers]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return True


@router.post("", response_model=list[RecommendationsPublic])
async def recommend_batch(
    body: BatchRecommendationRequest, service: ServiceDep, settings: SettingsDep
) -> list[RecommendationsPublic]:
    """Recommendations for several users at once, or for one anonymous user given
    ``recent_item_ids`` (and no ``user_ids``)."""
    if body.k > settings.max_k:
        raise ValidationError(f"k must be at most {settings.max_k}, got {body.k}")
    if not body.user_ids and not body.recent_item_ids:
        raise ValidationError("give user_ids, or recent_item_ids for an anonymous user")
    if not body.user_ids:
        answer = await service.recommend(
            None, body.k, body.exclude_seen, body.filter, body.recent_item_ids, live=[]
        )
        return [answer.public()]
    histories, reason = await run_in_threadpool(service.live_history, body.user_ids)
    answers = await asyncio.gather(
        *(
            service.recommend(
                user_id,
                body.k,
                body.exclude_seen,
                body.filter,
                body.recent_item_ids,
                live=live,
                live_reason=reason,
            )
            for user_id, live in zip(body.user_ids, histories, strict=True)
        )
    )
    return [answer.public() for answer in answers]
