"""A production version that is archived or moved back to staging is no longer served."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mlrec.models.registry import Stage
from mlrec.services.api.app import create_app
from tests.unit.services.conftest import Harness


@pytest.mark.parametrize("stage", [Stage.ARCHIVED, Stage.STAGING])
def test_a_withdrawn_production_version_is_not_served_and_answers_say_why(
    harness: Harness, stage: Stage
) -> None:
    harness.publish("ease")
    state = harness.state()
    user = harness.data.users.id(0)
    try:
        with TestClient(create_app(state=state)) as client:
            assert client.get(f"/v1/recommendations/{user}").json()["source"] == "personal"

            harness.registry.promote("default", 1, stage)
            state.models.refresh()

            # as on a replica started now: no production version, so no model
            body = client.get(f"/v1/recommendations/{user}").json()
            assert body["source"] == "popular" and body["model"] is None
            assert body["degraded"]
            assert any("no production version" in r for r in body["degraded_reasons"])
            ready = client.get("/ready")
            assert ready.status_code == 503
            assert "no production version" in ready.json()["checks"]["model"]

            # promoted again: served again
            harness.registry.promote("default", 1)
            assert state.models.refresh()
            body = client.get(f"/v1/recommendations/{user}").json()
            assert body["source"] == "personal" and not body["degraded"]
            assert body["model"]["version"] == 1
    finally:
        state.close()
