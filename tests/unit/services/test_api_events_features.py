import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.core.errors import BackendUnavailableError
from mlrec.services.api.app import create_app
from tests.unit.services.conftest import ADMIN, Harness


def test_event_batch_is_accepted_with_ids(client: TestClient) -> None:
    events = [
        {"user_id": "u1", "item_id": "i1", "type": "view"},
        {"user_id": "u1", "item_id": "i2", "type": "rating", "value": 4.5, "event_id": "e-2"},
    ]
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2 and body["event_ids"][1] == "e-2" and body["spooled"] is False


def test_invalid_events_get_field_level_422(client: TestClient) -> None:
    missing = client.post("/v1/events", json={"item_id": "i1"})
    assert missing.status_code == 422 and "user_id" in missing.text
    rating = client.post("/v1/events", json={"user_id": "u", "item_id": "i", "type": "rating"})
    assert rating.status_code == 422 and "needs a value" in rating.text
    kind = client.post("/v1/events", json={"user_id": "u", "item_id": "i", "type": "like"})
    assert kind.status_code == 422
    spaces = client.post("/v1/events", json={"user_id": "a b", "item_id": "i"})
    assert spaces.status_code == 422


def test_feature_write_needs_the_admin_token(client: TestClient) -> None:
    rows = {"rows": {"u1": {"interaction_count": 3}}}
    assert client.put("/v1/features/user_stats", json=rows).status_code == 401
    wrong = client.put(
        "/v1/features/user_stats", json=rows, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    ok = client.put(
        "/v1/features/user_stats", json=rows, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert ok.status_code == 200 and ok.json() == {"written": 1, "skipped": 0}
    body = client.get("/v1/features/user_stats/u1").json()
    [entity] = body["entities"]
    assert entity["values"]["interaction_count"] == 3
    assert "weight_mean" in entity["missing"]


def test_a_feature_write_older_than_the_stored_row_is_reported_skipped(
    client: TestClient,
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    newer = {"rows": {"u1": {"interaction_count": 5}}, "timestamp": 1_700_000_100}
    older = {"rows": {"u1": {"interaction_count": 2}, "u2": {"interaction_count": 1}}}
    older["timestamp"] = 1_700_000_000
    assert client.put("/v1/features/user_stats", json=newer, headers=headers).json()["written"] == 1

    response = client.put("/v1/features/user_stats", json=older, headers=headers)

    assert response.json() == {"written": 1, "skipped": 1}  # u2 only


def test_feature_reads_report_unknown_view_and_feature(client: TestClient) -> None:
    assert client.get("/v1/features/nope/u1").status_code == 404
    batch = client.post(
        "/v1/features/user_stats/batch", json={"entity_ids": ["u1"], "features": ["height"]}
    )
    assert batch.status_code == 422 and "height" in batch.text


def test_bad_feature_value_writes_nothing(client: TestClient) -> None:
    rows = {"rows": {"u1": {"interaction_count": 1}, "u2": {"interaction_count": "many"}}}
    response = client.put(
        "/v1/features/user_stats", json=rows, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert response.status_code == 422 and "interaction_count" in response.text
    assert client.get("/v1/features/user_stats/u1").json()["entities"][0]["missing"]


def test_metrics_and_openapi_are_served(client: TestClient) -> None:
    client.get("/health")
    metrics = client.get("/metrics").text
    assert 'mlrec_api_request_duration_seconds_count{method="GET",route="/health"' in metrics
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/recommendations/{user_id}", "/v1/events", "/v1/features/{view}/batch"):
        assert path in paths


AS_ADMIN = {"Authorization": f"Bearer {ADMIN}", "content-type": "application/json"}


@pytest.mark.parametrize(
    "body",
    [
        '{"rows": {"u1": {"weight_sum": NaN}}}',
        '{"rows": {"u1": {"weight_sum": Infinity}}}',
        '{"rows": {"u1": {"weight_sum": 1e400}}}',
        '{"rows": {"u1": {"weight_sum": 1.0}}, "timestamp": NaN}',
        '{"rows": {"u1": {"weight_sum": 1.0}}, "timestamp": Infinity}',
        '{"rows": {"u1": {"weight_sum": 1.0}}, "timestamp": 99999999999}',
        '{"rows": {"u1": {"weight_sum": 1.0}}, "timestmap": 1}',
        '{"rows": {"\\ud800": {"weight_sum": 1.0}}}',
    ],
)
def test_feature_writes_json_cannot_read_back_or_never_stale_get_422(
    client: TestClient, body: str
) -> None:
    response = client.put("/v1/features/user_stats", content=body, headers=AS_ADMIN)
    assert response.status_code == 422, response.text
    assert client.get("/v1/features/user_stats/u1").json()["entities"][0]["missing"]


@pytest.mark.parametrize(
    "body",
    [
        '{"entity_ids": ["\\ud800"]}',
        '{"entity_ids": ["u1"], "feature": ["weight_sum"]}',
        json.dumps({"entity_ids": ["u1"], "features": [f"f{n}" for n in range(300)]}),
    ],
)
def test_bad_feature_reads_get_422(client: TestClient, body: str) -> None:
    response = client.post(
        "/v1/features/user_stats/batch", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text


def test_a_view_name_that_is_no_view_name_gets_422(client: TestClient) -> None:
    assert client.get("/v1/features/user_stats:weight_sum/u1").status_code == 422


class _UnreachableRows(InMemoryOnlineStore):
    """An online store whose feature reads fail as a frozen or dead Redis's do."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read_rows(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        raise BackendUnavailableError("Timeout reading from socket")


def test_feature_reads_answer_503_at_once_for_a_second_after_the_store_failed(
    harness: Harness,
) -> None:
    # each read used to wait out the store's timeout on a worker-pool thread, so a
    # frozen Redis queued the API's other thread-pool work (events) behind them
    online = _UnreachableRows()
    state = harness.state(online)
    with TestClient(create_app(state=state)) as client:
        first = client.get("/v1/features/user_stats/u1")
        batch = client.post("/v1/features/user_stats/batch", json={"entity_ids": ["u1"]})
        again = client.get("/v1/features/user_stats/u2")
    state.close()
    assert [first.status_code, batch.status_code, again.status_code] == [503, 503, 503]
    assert online.reads == 1  # the two later reads did not wait for the store
    assert "Timeout reading from socket" in again.json()["detail"]
