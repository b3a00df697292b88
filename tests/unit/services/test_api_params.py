"""The hot route's own parameter parsing: same validation and documentation as FastAPI's."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Path, Query
from fastapi.testclient import TestClient

from mlrec.services.api.errors import install_error_handlers
from mlrec.services.api.routes.recommendations import (
    RecommendationPath,
    RecommendationQuery,
    add_user_route,
    query_model,
)

_user_id = RecommendationPath.model_fields["user_id"]
# the path model's field as a FastAPI path parameter, same constraints
UserId = Annotated[(str, Path(description=_user_id.description), *_user_id.metadata)]


def _reference_app(query_type: type[RecommendationQuery] = RecommendationQuery) -> FastAPI:
    """The route as FastAPI would declare it, parameters solved by FastAPI (its 422s
    rendered by the app's handler, which bounds what they echo)."""
    app = FastAPI()
    install_error_handlers(app)

    async def reference(user_id: str, query: RecommendationQuery) -> str:
        return user_id

    # objects, not this module's string annotations: FastAPI cannot resolve a local
    reference.__annotations__ = {
        "user_id": UserId,
        "query": Annotated[query_type, Query()],
        "return": str,
    }
    app.get("/v1/recommendations/{user_id}")(reference)
    return app


def _parameters(app: FastAPI) -> list[dict[str, object]]:
    operation = app.openapi()["paths"]["/v1/recommendations/{user_id}"]["get"]
    parameters: list[dict[str, object]] = operation["parameters"]
    return parameters


def test_hot_route_documents_the_parameters_fastapi_would() -> None:
    app = FastAPI()
    add_user_route(app)
    assert _parameters(app) == _parameters(_reference_app())


def test_a_started_app_documents_the_parameters_fastapi_would(client: TestClient) -> None:
    # once started, k's maximum is the app's max_k setting (100 in the tests)
    ours = client.get("/openapi.json").json()["paths"]["/v1/recommendations/{user_id}"]["get"]
    assert ours["parameters"] == _parameters(_reference_app(query_model(100)))


def test_query_errors_match_fastapis(client: TestClient) -> None:
    # the app validates k against its max_k setting (100 in the tests)
    reference = TestClient(_reference_app(query_model(100)))
    cases = [
        ("u1", {"k": "0"}),
        ("u1", {"k": "ten"}),
        ("u1", {"exclude_seen": "maybe", "k": "2000"}),
        ("u1", {"k": "101"}),  # above max_k
        ("x" * 300, {}),  # the path parameter too
        ("a%20b", {"k": "0"}),  # both at once
    ]
    for user, params in cases:
        ours = client.get(f"/v1/recommendations/{user}", params=params)
        theirs = reference.get(f"/v1/recommendations/{user}", params=params)
        assert ours.status_code == theirs.status_code == 422
        assert ours.json() == theirs.json()


def _without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without its request id and with its scores apart: popular scores
    decay with the clock (training counts included), so two calls a moment apart
    differ in the last digits."""
    out = {key: value for key, value in body.items() if key != "request_id"}
    out["items"] = [{**item, "score": None} for item in body["items"]]
    out["scores"] = [item["score"] for item in body["items"]]
    return out


def test_direct_answers_are_the_routes_answers(client: TestClient) -> None:
    # an Origin header sends a request through the whole FastAPI stack to the route
    routed = {"Origin": "http://elsewhere.example"}
    for user, params in [
        ("u0001", {}),
        ("u0002", {"k": "3", "exclude_seen": "false"}),
        ("u0003", {"k": "5", "filter": "category:Comedy"}),
        ("never-seen", {"k": "4"}),
    ]:
        direct = client.get(f"/v1/recommendations/{user}", params=params)
        through_route = client.get(f"/v1/recommendations/{user}", params=params, headers=routed)
        assert direct.status_code == through_route.status_code == 200
        ours, theirs = _without_request_id(direct.json()), _without_request_id(through_route.json())
        assert ours.pop("scores") == pytest.approx(theirs.pop("scores"), rel=1e-5)
        assert ours == theirs
        assert direct.headers["content-type"] == "application/json"
        assert direct.headers["vary"] == "Origin"


def test_direct_answers_are_timed_under_the_route_template(client: TestClient) -> None:
    client.get("/v1/recommendations/u0001")
    metrics = client.get("/metrics").text
    assert (
        'mlrec_api_request_duration_seconds_count{method="GET",'
        'route="/v1/recommendations/{user_id}",status="200"}'
    ) in metrics
