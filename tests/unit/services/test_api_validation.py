"""422s name exactly what is wrong, where, and the OpenAPI schema says the same limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlrec.backends.sqlite_log import SqliteEventLog
from mlrec.events.log import INTERACTIONS_TOPIC
from mlrec.services.api.app import create_app
from tests.unit.services.conftest import Harness


def _locations(response: Any) -> list[list[object]]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


# --- POST /v1/events: one shape at a time ---------------------------------------------


def test_a_bad_event_in_a_batch_gets_only_its_own_error(client: TestClient) -> None:
    events = [{"user_id": "u1", "item_id": "i1"}, {"user_id": "u1", "type": "click"}]
    response = client.post("/v1/events", json={"events": events})
    assert response.json()["detail"] == [
        {
            "type": "missing",
            "loc": ["body", "events", 1, "item_id"],
            "msg": "Field required",
            "input": {"user_id": "u1", "type": "click"},
        }
    ]


def test_a_bad_single_event_is_not_also_reported_as_a_batch(client: TestClient) -> None:
    assert _locations(client.post("/v1/events", json={"item_id": "i1"})) == [["body", "user_id"]]
    both = client.post("/v1/events", json={"user_id": "a b", "type": "like", "item_id": "i"})
    assert _locations(both) == [["body", "user_id"], ["body", "type"]]


def test_a_body_that_is_no_object_says_which_shapes_are_expected(client: TestClient) -> None:
    for body in ([{"user_id": "u1", "item_id": "i1"}], "view", 3):
        response = client.post("/v1/events", json=body)
        [error] = response.json()["detail"]
        assert response.status_code == 422 and error["loc"] == ["body"]
        assert "event object" in error["msg"] and '{"events"' in error["msg"]


def test_a_rating_without_value_is_reported_at_value(client: TestClient) -> None:
    single = client.post("/v1/events", json={"user_id": "u", "item_id": "i", "type": "rating"})
    assert _locations(single) == [["body", "value"]]
    assert "a rating event needs a value" in single.json()["detail"][0]["msg"]
    events = [{"user_id": "u", "item_id": "i"}, {"user_id": "u", "item_id": "i", "type": "rating"}]
    batch = client.post("/v1/events", json={"events": events})
    assert _locations(batch) == [["body", "events", 1, "value"]]


def test_event_bodies_refuse_unknown_fields_but_keep_free_form_context(
    client: TestClient,
) -> None:
    event = {"user_id": "u", "item_id": "i", "context": {"page": "home", "slot": 3}}
    assert client.post("/v1/events", json=event).status_code == 202
    assert client.post("/v1/events", json={"events": [event]}).status_code == 202
    batch = client.post("/v1/events", json={"events": [event], "source": "web"})
    assert _locations(batch) == [["body", "source"]]
    single = client.post("/v1/events", json={**event, "item": "i2"})
    assert _locations(single) == [["body", "item"]]


def test_an_event_whose_context_is_too_large_is_refused_at_context(
    harness: Harness, client: TestClient
) -> None:
    big = {"user_id": "u", "item_id": "i", "context": {"x": "a" * 1_200_000}}
    single = client.post("/v1/events", json=big)
    assert _locations(single) == [["body", "context"]]
    assert "context is too large" in single.json()["detail"][0]["msg"]
    small = {"user_id": "u", "item_id": "i"}
    batch = client.post("/v1/events", json={"events": [small, big]})
    assert _locations(batch) == [["body", "events", 1, "context"]]
    # nothing of either request reached the log
    log = SqliteEventLog(harness.tmp / "events.db")
    assert log.consumer("check", [INTERACTIONS_TOPIC]).poll(10, 0.05) == []


def test_openapi_documents_both_event_shapes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/events"]["post"]["requestBody"]
    shapes = body["content"]["application/json"]["schema"]["anyOf"]
    assert shapes == [
        {"$ref": "#/components/schemas/EventBatch"},
        {"$ref": "#/components/schemas/InteractionEvent"},
    ]
    batch = schema["components"]["schemas"]["EventBatch"]
    assert batch["properties"]["events"]["items"] == {
        "$ref": "#/components/schemas/InteractionEvent"
    }
    assert body["required"] is True


# --- k: limited by the max_k setting, as documented -----------------------------------


def _k_error(location: str, max_k: int, given: object) -> dict[str, object]:
    return {
        "type": "less_than_equal",
        "loc": [location, "k"],
        "msg": f"Input should be less than or equal to {max_k}",
        "input": given,
        "ctx": {"le": max_k},
    }


def test_k_over_max_k_is_a_field_error_naming_the_limit(client: TestClient) -> None:
    for k in ("101", "1000", "5000"):
        response = client.get("/v1/recommendations/u1", params={"k": k})
        assert response.status_code == 422
        assert response.json() == {"detail": [_k_error("query", 100, k)]}
    posted = client.post("/v1/recommendations", json={"user_ids": ["u1"], "k": 101})
    assert posted.status_code == 422
    assert posted.json() == {"detail": [_k_error("body", 100, 101)]}
    # reported together with the other errors of the query
    both = client.get("/v1/recommendations/u1", params={"k": "101", "exclude_seen": "maybe"})
    assert _locations(both) == [["query", "k"], ["query", "exclude_seen"]]


@pytest.fixture
def small_k_client(harness: Harness) -> Iterator[TestClient]:
    harness.settings = harness.settings.model_copy(update={"max_k": 7})
    harness.publish("ease")
    state = harness.state()
    with TestClient(create_app(state=state)) as test_client:
        yield test_client
    state.close()


def test_k_is_limited_by_the_apps_own_setting(small_k_client: TestClient) -> None:
    user = "u0001"
    ok = small_k_client.get(f"/v1/recommendations/{user}", params={"k": 7})
    assert ok.status_code == 200 and len(ok.json()["items"]) == 7
    over = small_k_client.get(f"/v1/recommendations/{user}", params={"k": 8})
    assert over.json() == {"detail": [_k_error("query", 7, "8")]}
    routed = {"Origin": "http://elsewhere.example"}  # through FastAPI, not the fast path
    over_routed = small_k_client.get(f"/v1/recommendations/{user}", params={"k": 8}, headers=routed)
    assert over_routed.json() == over.json()
    posted = small_k_client.post("/v1/recommendations", json={"user_ids": [user], "k": 8})
    assert posted.json() == {"detail": [_k_error("body", 7, 8)]}
    answers = small_k_client.post("/v1/recommendations", json={"user_ids": [user], "k": 7})
    assert answers.status_code == 200 and len(answers.json()[0]["items"]) == 7


K_QUERY_ROUTES = [
    "/v1/recommendations/{user_id}",
    "/v1/items/popular",
    "/v1/items/{item_id}/similar",
]


def _documented_k(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema of ``k`` in every route that takes it."""
    found = []
    for route in K_QUERY_ROUTES:
        parameters = schema["paths"][route]["get"]["parameters"]
        found += [p["schema"] for p in parameters if p["name"] == "k"]
    body = schema["paths"]["/v1/recommendations"]["post"]["requestBody"]
    name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    found.append(schema["components"]["schemas"][name]["properties"]["k"])
    assert len(found) == len(K_QUERY_ROUTES) + 1
    return found


def test_openapi_documents_fastapis_422_on_every_route_that_validates(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for route in K_QUERY_ROUTES:
        answer = schema["paths"][route]["get"]["responses"]["422"]
        ref = answer["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/HTTPValidationError"


@pytest.mark.parametrize(("app_client", "max_k"), [("client", 100), ("small_k_client", 7)])
def test_openapi_documents_the_enforced_maximum_of_k(
    app_client: str, max_k: int, request: pytest.FixtureRequest
) -> None:
    test_client: TestClient = request.getfixturevalue(app_client)
    for k in _documented_k(test_client.get("/openapi.json").json()):
        assert k["maximum"] == max_k and k["minimum"] == 1
        assert "MLREC_MAX_K" in k["description"]


def test_openapi_of_an_app_not_started_names_the_setting(harness: Harness) -> None:
    state = harness.state()
    app = create_app(state=state)
    try:
        before = app.openapi()  # no state yet: no maximum is known
        for k in _documented_k(before):
            assert "maximum" not in k and "MLREC_MAX_K" in k["description"]
        with TestClient(app) as started:  # the schema cached before start-up is not kept
            for k in _documented_k(started.get("/openapi.json").json()):
                assert k["maximum"] == 100
    finally:
        state.close()


# --- POST /v1/recommendations: no unknown fields --------------------------------------


def test_unknown_fields_of_a_recommendation_request_are_refused(client: TestClient) -> None:
    misspelt = client.post("/v1/recommendations", json={"user_id": ["u1"], "k": 3})
    assert misspelt.json() == {
        "detail": [
            {
                "type": "extra_forbidden",
                "loc": ["body", "user_id"],
                "msg": "Extra inputs are not permitted",
                "input": ["u1"],
            }
        ]
    }
    free_form = {"user_ids": ["u0001"], "k": 3, "context": {"device": "tv"}}
    assert client.post("/v1/recommendations", json=free_form).status_code == 200


@pytest.mark.parametrize("path", ["/v1/items/popular", "/v1/items/i0001/similar"])
def test_item_endpoints_report_k_over_the_limit_as_a_field_error(
    client: TestClient, path: str
) -> None:
    response = client.get(path, params={"k": 101})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "k"] and "100" in error["msg"]


def test_a_user_id_longer_than_256_bytes_is_refused_before_it_joins_a_batch(
    client: TestClient,
) -> None:
    # 200 characters, 400 UTF-8 bytes: the feature store's limit is in bytes, and an
    # id it refuses inside a batch would fail every request batched with it
    long_id = "é" * 200
    response = client.get(f"/v1/recommendations/{long_id}")
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["path", "user_id"] and "256 bytes" in error["msg"]

    response = client.post("/v1/recommendations", json={"user_ids": ["u0001", long_id]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "user_ids", 1]
    assert client.get("/v1/recommendations/u0001").status_code == 200


@pytest.mark.parametrize("item_id", ["a b", "é" * 200, "tab%09here"])
def test_an_item_id_that_breaks_the_id_rule_is_a_422_at_item_id_not_a_404(
    client: TestClient, item_id: str
) -> None:
    response = client.get(f"/v1/items/{item_id}/similar")

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["path", "item_id"]


# --- what JSON cannot carry back, and bodies too large -------------------------------


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        ("/v1/events", '{"user_id": "a", "item_id": "i", "timestamp": NaN}', ["body", "timestamp"]),
        (
            "/v1/events",
            '{"user_id": "a", "item_id": "i", "timestamp": Infinity}',
            ["body", "timestamp"],
        ),
        (
            "/v1/events",
            '{"user_id": "a", "item_id": "i", "type": "rating", "value": -Infinity}',
            ["body", "value"],
        ),
        ("/v1/events", '{"user_id": "\\ud800", "item_id": "i"}', ["body", "user_id"]),
        ("/v1/recommendations", '{"user_ids": ["u1"], "k": NaN}', ["body", "k"]),
        ("/v1/recommendations", '{"user_ids": ["\\ud800"]}', ["body", "user_ids", 0]),
    ],
)
def test_values_json_cannot_echo_get_a_422_at_their_field(
    client: TestClient, path: str, body: str, location: list[object]
) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert location in _locations(response)


def test_a_huge_invalid_value_is_not_echoed_whole(client: TestClient) -> None:
    response = client.post("/v1/events", json={"user_id": "u" * 100_000, "item_id": "i"})
    assert _locations(response) == [["body", "user_id"]]
    assert len(response.content) < 2_000


def test_a_body_over_the_size_limit_gets_413_before_it_is_read(harness: Harness) -> None:
    harness.settings = harness.settings.model_copy(update={"max_request_bytes": 4096})
    harness.publish("ease")
    state = harness.state()
    with TestClient(create_app(state=state)) as client:
        events = [{"user_id": "u1", "item_id": f"i{n}"} for n in range(200)]
        too_large = client.post("/v1/events", json={"events": events})
        assert too_large.status_code == 413
        assert "at most 4096 bytes" in too_large.json()["detail"]
        browser = {"Origin": "https://app.example"}  # it can read the 413 only with CORS
        cross_origin = client.post("/v1/events", json={"events": events}, headers=browser)
        assert cross_origin.status_code == 413
        assert cross_origin.headers["access-control-allow-origin"] == "*"

        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield b'{"events": ['
            yield b",".join(b'{"user_id": "u1", "item_id": "i1"}' for _ in range(200))
            yield b"]}"

        streamed = client.post(
            "/v1/events", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        small = client.post("/v1/events", json={"events": events[:3]})
        assert small.status_code == 202
        metrics = client.get("/metrics").text
    state.close()
    # refused before routing, and still timed under its route
    assert 'method="POST",route="/v1/events",status="413"' in metrics


def test_every_error_of_a_large_batch_is_an_error_object(client: TestClient) -> None:
    events = [{"user_id": "u1"} for _ in range(30)]
    response = client.post("/v1/events", json={"events": events})
    locations = _locations(response)
    assert locations == [["body", "events", n, "item_id"] for n in range(30)]
