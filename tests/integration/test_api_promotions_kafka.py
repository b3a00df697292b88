"""A promotion announced on the real Kafka broker reaches a running API at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mlrec.backends.factory import open_artifact_store, open_model_registry
from mlrec.cli.main import app as cli
from mlrec.data import make_demo
from mlrec.models import create_model
from mlrec.models.publish import publish_model
from mlrec.services.api.app import build_state, create_app
from mlrec.services.api.config import ApiSettings
from tests.integration.serving import put_in_production
from tests.unit.services.conftest import wait_for

pytestmark = pytest.mark.integration


def test_a_promotion_through_kafka_is_served_without_waiting_for_the_registry_poll(
    tmp_path: Path, fresh_database_url: str, kafka_bootstrap: str
) -> None:
    data = make_demo(n_users=60, n_items=40, seed=5)
    put_in_production(create_model("ease").fit(data), tmp_path / "v1", fresh_database_url)
    settings = ApiSettings(
        data_dir=tmp_path,
        database_url=fresh_database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        model_poll_seconds=3600,  # only the announcement can swap the model in time
    )
    state = build_state(settings)
    successor = create_model("itemknn").fit(data)
    successor.save(tmp_path / "v2")
    publish_model(
        successor,
        tmp_path / "v2",
        [open_artifact_store(fresh_database_url)],
        open_model_registry(fresh_database_url),
        "default",
        "demo",
    )
    try:
        with TestClient(create_app(state=state)) as client:
            user = data.users.id(0)
            assert client.get(f"/v1/recommendations/{user}").json()["model"]["version"] == 1

            promoted = CliRunner().invoke(
                cli,
                ["models", "promote", "default:2"],
                env={
                    "MLREC_DATA_DIR": str(tmp_path),
                    "MLREC_DATABASE_URL": fresh_database_url,
                    "MLREC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                },
            )
            assert promoted.exit_code == 0, promoted.output
            assert "warning" not in promoted.output

            assert wait_for(
                lambda: client.get(f"/v1/recommendations/{user}").json()["model"]["version"] == 2,
                timeout=10.0,
            )
    finally:
        state.close()
