"""build_state turns the API's settings into its collaborators."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from mlrec.backends.redis_features import RedisOnlineStore
from mlrec.services.api.app import build_state, create_app
from mlrec.services.api.config import ApiSettings


def test_the_feature_timeout_setting_bounds_every_redis_call(tmp_path: Path) -> None:
    settings = ApiSettings(
        data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0", feature_timeout_seconds=0.05
    )
    state = build_state(settings)  # Redis is not contacted until a request needs it
    try:
        online = state.features.online
        assert isinstance(online, RedisOnlineStore) and online.socket_timeout == 0.05
    finally:
        state.close()


def test_the_api_starts_while_its_database_is_unreachable_and_says_why(tmp_path: Path) -> None:
    # A uvicorn worker restarted during a database outage failed its start-up, and
    # uvicorn then stopped the whole server, the workers still serving included.
    settings = ApiSettings(data_dir=tmp_path, database_url="postgresql://u:s3cret@127.0.0.1:1/x")
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        reason = ready.json()["checks"]["model"]
        assert "cannot connect to the database" in reason and "s3cret" not in reason

        answer = client.get("/v1/recommendations/u1?k=3")
        assert answer.status_code == 200
        body = answer.json()
        assert body["source"] == "popular" and body["degraded"] is True
        assert any("cannot connect to the database" in r for r in body["degraded_reasons"])
