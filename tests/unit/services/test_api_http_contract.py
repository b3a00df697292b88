"""The HTTP contract as a client sees it: error shapes, media types, methods, OpenAPI."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlrec.services.api.app import create_app
from tests.unit.services.conftest import Harness


def _error(response: Any) -> dict[str, Any]:
    """The one field-level error of a 422."""
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert isinstance(error, dict)
    return error


# --- filter: a field error at the filter ---------------------------------------------


@pytest.mark.parametrize("text", ["bogus", "category:", "items:", "colour:red", "category:|", "|"])
def test_a_bad_filter_is_a_field_error_at_filter(client: TestClient, text: str) -> None:
    for response, location in [
        (client.get("/v1/recommendations/u0001", params={"filter": text}), ["query", "filter"]),
        (client.get("/v1/items/popular", params={"filter": text}), ["query", "filter"]),
        (
            client.post("/v1/recommendations", json={"user_ids": ["u0001"], "filter": text}),
            ["body", "filter"],
        ),
    ]:
        error = _error(response)
        assert error["loc"] == location
        assert "category:<name>" in error["msg"] and error["input"] == text


def test_a_good_filter_still_filters(client: TestClient) -> None:
    only = {"i0001", "i0002", "i0003"}
    response = client.get(
        "/v1/recommendations/u0001", params={"filter": "items:i0001|i0002|i0003|", "k": 5}
    )
    assert response.status_code == 200
    assert {item["item_id"] for item in response.json()["items"]} <= only
    assert client.get("/v1/items/popular", params={"filter": ""}).status_code == 200


# --- POST /v1/recommendations: who to recommend for ----------------------------------


@pytest.mark.parametrize("body", [{}, {"user_ids": []}, {"k": 3, "recent_item_ids": []}])
def test_a_batch_without_users_or_items_is_a_field_error(
    client: TestClient, body: dict[str, Any]
) -> None:
    error = _error(client.post("/v1/recommendations", json=body))
    assert error["loc"] == ["body"]
    assert "user_ids" in error["msg"] and "recent_item_ids" in error["msg"]


# --- media types and undecodable bodies ----------------------------------------------

_EVENT = b'{"user_id": "u1", "item_id": "i0001"}'


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},  # curl -d without -H
        {},
    ],
)
@pytest.mark.parametrize(
    "path", ["/v1/events", "/v1/recommendations", "/v1/features/user_stats/batch"]
)
def test_a_body_that_is_not_json_gets_415(
    client: TestClient, headers: dict[str, str], path: str
) -> None:
    response = client.post(path, content=_EVENT, headers=headers)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["detail"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
def test_json_media_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post("/v1/events", content=_EVENT, headers={"content-type": content_type})
    assert response.status_code == 202, response.text


def test_a_body_that_is_not_utf8_is_a_422_saying_so(client: TestClient) -> None:
    body = b'{"user_id": "u\xff", "item_id": "i0001"}'
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    error = _error(response)
    assert error["type"] == "json_invalid" and error["loc"][0] == "body"
    assert "UTF-8" in error["ctx"]["error"]


def test_json_nested_too_deeply_is_a_422(client: TestClient) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    error = _error(response)
    assert error["type"] == "json_invalid" and "deep" in error["ctx"]["error"]


# --- HEAD and Allow ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/health", "/v1/recommendations/u0001?k=2", "/v1/items/popular", "/v1/items/i0001/similar"],
)
def test_head_answers_like_get_without_a_body(client: TestClient, path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    # the length of the body a GET gets (popular scores decay: a digit or two apart)
    assert abs(int(head.headers["content-length"]) - len(got.content)) < 10


def test_head_of_a_cross_origin_request_keeps_cors(client: TestClient) -> None:
    head = client.head("/v1/recommendations/u0001", headers={"Origin": "https://app.example"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["access-control-allow-origin"] == "*"


def test_head_of_a_post_only_route_is_405_with_allow(client: TestClient) -> None:
    response = client.head("/v1/events")
    assert response.status_code == 405 and response.headers["allow"] == "POST"


def test_a_405_of_a_get_route_allows_head_too(client: TestClient) -> None:
    response = client.delete("/v1/recommendations/u0001")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_head_is_timed_as_head(client: TestClient) -> None:
    client.head("/health")
    metrics = client.get("/metrics").text
    assert 'mlrec_api_request_duration_seconds_count{method="HEAD",route="/health"' in metrics


def test_an_unexpected_error_is_a_plain_500_and_is_timed(harness: Harness) -> None:
    # the edge sees requests before FastAPI's error middleware: a route that raises
    # must still get FastAPI's 500, with CORS-free headers, and be timed as a 500
    harness.publish("ease")
    state = harness.state()
    app = create_app(state=state)

    async def broken() -> None:
        raise RuntimeError("a defect")

    app.add_api_route("/broken", broken)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/broken")
            assert response.status_code == 500
            assert response.text == "Internal Server Error"
            metrics = client.get("/metrics").text
    finally:
        state.close()
    assert (
        'mlrec_api_request_duration_seconds_count{method="GET",route="/broken",status="500"}'
        in metrics
    )


def test_an_unexpected_error_on_the_hot_route_is_a_500_and_is_timed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the edge answers this route itself, outside FastAPI's error middleware
    harness.publish("ease")
    state = harness.state()

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a defect")

    monkeypatch.setattr(state.service, "recommend", broken)
    try:
        with TestClient(create_app(state=state), raise_server_exceptions=False) as client:
            assert client.get("/v1/recommendations/u0001").status_code == 500
            metrics = client.get("/metrics").text
    finally:
        state.close()
    assert (
        'mlrec_api_request_duration_seconds_count{method="GET",'
        'route="/v1/recommendations/{user_id}",status="500"}' in metrics
    )


# --- ids: the message says what is wrong ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [("/v1/recommendations/a%20b", ["path", "user_id"]), ("/v1/items/a%09b/similar", None)],
)
def test_an_id_with_whitespace_is_reported_in_words(
    client: TestClient, path: str, location: list[str] | None
) -> None:
    error = _error(client.get(path))
    assert "whitespace" in error["msg"], error
    assert error["loc"] == (location or ["path", "item_id"])
    event = client.post("/v1/events", json={"user_id": "a\u00a0b", "item_id": "i"})
    assert "whitespace" in _error(event)["msg"]


# --- OpenAPI: the answers the routes give --------------------------------------------


def test_openapi_documents_the_error_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        ("/v1/items/{item_id}/similar", "get"): {"404"},
        ("/v1/events", "post"): {"413", "415"},
        ("/v1/recommendations", "post"): {"413", "415"},
        ("/v1/features/{view}/{entity_id}", "get"): {"404", "503"},
        ("/v1/features/{view}/batch", "post"): {"404", "413", "415", "503"},
        ("/v1/features/{view}", "put"): {"401", "403", "404", "413", "415"},
    }
    for (path, method), codes in expected.items():
        responses = paths[path][method]["responses"]
        assert codes <= set(responses), (path, method, sorted(responses))
        for code in codes:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorPublic"}


def test_openapi_describes_every_filter(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/recommendations/{user_id}", "/v1/items/popular"):
        (parameter,) = [p for p in paths[path]["get"]["parameters"] if p["name"] == "filter"]
        assert "category:<name>" in parameter["description"]


# --- paths that are not UTF-8 --------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/recommendations/u%FF", "/v1/items/%C3/similar"])
def test_a_path_that_is_not_utf8_is_a_400_not_another_id(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert "UTF-8" in response.json()["detail"]
    cross_origin = client.get(path, headers={"Origin": "https://app.example"})
    assert cross_origin.status_code == 400
    assert cross_origin.headers["access-control-allow-origin"] == "*"


def test_a_replacement_character_sent_as_utf8_is_an_id_like_any(client: TestClient) -> None:
    response = client.get("/v1/recommendations/u%EF%BF%BD")
    assert response.status_code == 200 and response.json()["user_id"] == "u\ufffd"
