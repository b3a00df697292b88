"""build_state turns the API's settings into its collaborators."""

from __future__ import annotations

from pathlib import Path

from mlrec.backends.redis_features import RedisOnlineStore
from mlrec.services.api.app import build_state
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
