"""``/v1/recommendations``: personalised top-k for known, new and anonymous users."""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.constants import REF_PREFIX
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, create_model
from pydantic import ValidationError as PydanticValidationError
from starlette.types import Scope, Send

from mlrec.core.errors import MlrecError
from mlrec.events.schemas import EntityId
from mlrec.services.api.answers import Recommendations
from mlrec.services.api.deps import ServiceDep, SettingsDep, state_of
from mlrec.services.api.errors import JsonBodyRoute
from mlrec.services.api.params import k_over_limit, openapi_parameters, parse_parameters
from mlrec.services.api.schemas import (
    FILTER_DESCRIPTION,
    K_DESCRIPTION,
    BatchRecommendationRequest,
    FilterText,
    RecommendationsPublic,
    error_responses,
)
from mlrec.services.api.service import parse_filter
from mlrec.services.api.state import ApiState

router = APIRouter(
    prefix="/v1/recommendations", tags=["recommendations"], route_class=JsonBodyRoute
)


class RecommendationPath(BaseModel):
    """Path of ``GET /v1/recommendations/{user_id}`` (see :mod:`..params`)."""

    user_id: EntityId = Field(description="User id")


class RecommendationQuery(BaseModel):
    """Query parameters of ``GET /v1/recommendations/{user_id}`` (see :mod:`..params`).

    ``k``'s maximum is the app's ``max_k`` setting: requests are validated with
    :func:`query_model` of it.
    """

    k: int = Field(default=10, ge=1, description=K_DESCRIPTION)
    exclude_seen: bool = Field(default=True, description="Drop items the user interacted with")
    filter: FilterText = Field(default=None, description=FILTER_DESCRIPTION)


@cache
def query_model(max_k: int) -> type[RecommendationQuery]:
    """:class:`RecommendationQuery` with ``k`` at most ``max_k`` (an app's setting).

    Over the limit is then an ordinary field error (``loc: ["query", "k"]``), and the
    documented maximum is the one enforced.
    """
    return create_model(
        "RecommendationQuery",
        __base__=RecommendationQuery,
        __module__=__name__,
        k=(int, Field(default=10, ge=1, le=max_k, description=K_DESCRIPTION)),
    )


_VALIDATION_ERROR: dict[str, Any] = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": f"{REF_PREFIX}HTTPValidationError"}}},
}
"""FastAPI's own 422 response (its ``HTTPValidationError`` component)."""


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
        openapi_extra={"parameters": _user_parameters(RecommendationQuery)},
        # FastAPI documents a 422 only for parameters it parses itself
        responses={422: _VALIDATION_ERROR},
    )
    route = app.router.routes[-1]
    assert isinstance(route, APIRoute) and route.path == USER_ROUTE
    _document_max_k(app, route)


def _user_parameters(query: type[RecommendationQuery]) -> list[dict[str, Any]]:
    return openapi_parameters(RecommendationPath, "path") + openapi_parameters(query, "query")


def _document_max_k(app: FastAPI, user_route: APIRoute) -> None:
    """Have ``app``'s OpenAPI schema give ``k`` the app's ``max_k`` as its maximum.

    The setting is known only once the app has started (its :class:`ApiState`), while
    the routes are declared before. Until then (a schema exported from an app never
    started) ``k`` has no maximum and its description names the setting.
    """
    generate = app.openapi
    schemas: dict[int | None, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        state: ApiState | None = getattr(app.state, "mlrec", None)
        max_k = None if state is None else state.settings.max_k
        if max_k not in schemas:
            query = RecommendationQuery if max_k is None else query_model(max_k)
            user_route.openapi_extra = {"parameters": _user_parameters(query)}
            app.openapi_schema = None  # FastAPI's cache: build the schema for this limit
            schema = generate()
            if max_k is not None:
                _limit_other_k(schema, max_k)
            schemas[max_k] = schema
        app.openapi_schema = schemas[max_k]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _limit_other_k(schema: dict[str, Any], max_k: int) -> None:
    """Document ``max_k`` as the maximum of ``k`` in ``POST /v1/recommendations`` and
    of every other ``k`` query parameter described by :data:`K_DESCRIPTION`."""
    for path in schema["paths"].values():
        for operation in path.values():
            for parameter in operation.get("parameters", ()):
                if parameter["name"] == "k" and parameter["schema"].get("description") == (
                    K_DESCRIPTION
                ):
                    parameter["schema"]["maximum"] = max_k
    operation = schema["paths"].get(router.prefix, {}).get("post")
    if operation is None:  # an app without the router
        return
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:  # the request model, among the components
        body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    body["properties"]["k"]["maximum"] = max_k


async def recommend_for_user(request: Request) -> Response:
    """Top-k items for a user, from their training history plus live interactions.

    A user with no history gets popular items (``source: popular``). If the feature
    store or the model is unavailable the answer is ``degraded`` with reasons.
    """
    # The hottest route reads its query and collaborators from the request rather
    # than through FastAPI parameters and Depends (their resolution measured ~40% of
    # its time), and its answer, valid by construction, is serialised directly.
    state = state_of(request)
    path, query = parse_parameters(RecommendationPath, query_model(state.settings.max_k), request)
    answer = await _recommend(state, path, query)
    return Response(answer.json(), media_type="application/json")


async def _recommend(
    state: ApiState, path: RecommendationPath, query: RecommendationQuery
) -> Recommendations:
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
        state: ApiState = scope["app"].state.mlrec
        path = RecommendationPath.model_validate({"user_id": user_id})
        query = query_model(state.settings.max_k).model_validate(
            dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        )
        answer = await _recommend(state, path, query)
    except (PydanticValidationError, MlrecError):
        return False
    body = answer.json()
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *extra_headers]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return True


@router.post("", response_model=list[RecommendationsPublic], responses=error_responses(413, 415))
async def recommend_batch(
    body: BatchRecommendationRequest, service: ServiceDep, settings: SettingsDep
) -> list[RecommendationsPublic]:
    """Recommendations for several users at once, or for one anonymous user given
    ``recent_item_ids`` (and no ``user_ids``)."""
    if body.k > settings.max_k:
        raise k_over_limit(body.k, settings.max_k, "body")
    if not body.user_ids:
        answer = await service.recommend(
            None, body.k, body.exclude_seen, body.filter, body.recent_item_ids, live=[]
        )
        return [answer.public()]
    histories, reason = await run_in_threadpool(service.live_history, body.user_ids)
    parsed = parse_filter(body.filter)  # once: it may be as large as the body
    answers = await asyncio.gather(
        *(
            service.recommend(
                user_id,
                body.k,
                body.exclude_seen,
                parsed,
                body.recent_item_ids,
                live=live,
                live_reason=reason,
            )
            for user_id, live in zip(body.user_ids, histories, strict=True)
        )
    )
    return [answer.public() for answer in answers]
