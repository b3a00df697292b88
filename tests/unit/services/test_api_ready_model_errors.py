"""/ready says so when the served model is not the registry's production version (a
promotion that could not be loaded), while the previous model keeps serving."""

from __future__ import annotations

from fastapi.testclient import TestClient

from mlrec.services.api.app import create_app
from tests.unit.services.conftest import Harness


def test_a_promotion_that_cannot_load_makes_ready_degraded_while_the_old_model_serves(
    harness: Harness,
) -> None:
    harness.publish("ease")
    state = harness.state()
    try:
        with TestClient(create_app(state=state)) as client:
            assert client.get("/ready").json()["checks"]["model"] == "ok"
            version = harness.publish("itemknn", promote=False)
            sha = harness.registry.get("default", version).artifact_sha256
            stored = harness.store.root / sha / "arrays.npz"
            stored.write_bytes(stored.read_bytes()[:100])  # damaged in the store
            harness.registry.promote("default", version)
            state.models.refresh()

            response = client.get("/ready")

            body = response.json()
            assert response.status_code == 200 and body["status"] == "degraded"
            assert body["model"]["version"] == 1
            assert body["checks"]["model"].startswith("serving default:1; ")
            assert "does not match" in body["checks"]["model"]
    finally:
        state.close()
