"""A registry row's ``artifact_sha256`` names a directory of the artifact cache and of
the models directory: text that is not a sha256 (``../spool``, an absolute path) must
never reach the filesystem. Before the fix a production row holding ``../spool`` made
every API replica move the event spool aside and delete it (a cached copy that is
"incomplete" is discarded) on its next registry poll."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlrec.backends.factory import open_artifact_store, open_model_registry
from mlrec.backends.sql.registry import SqlModelRegistry
from mlrec.backends.sql.schema import model_versions
from mlrec.core.errors import ArtifactIntegrityError, NotFoundError, ValidationError
from mlrec.models.artifact_store import LocalArtifactStore, fetch_cached
from mlrec.models.registry import NewModelVersion
from mlrec.services.api.model_server import ModelServer

BAD_SHAS = ["../spool", "../../victim", "/tmp/victim", "A" * 64, "a" * 63, "a" * 64 + "\n"]


def _spool(data: Path) -> Path:
    segment = data / "spool" / "slot-00" / "segment-000001"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"events accepted while Kafka was down")
    return segment


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
@pytest.mark.parametrize("sha", BAD_SHAS)
def test_a_registry_refuses_to_register_an_artifact_sha_that_is_not_one(
    tmp_path: Path, url: str, sha: str
) -> None:
    registry = open_model_registry(f"sqlite:///{tmp_path / 'm.db'}" if url == "sqlite" else url)
    with pytest.raises(ValidationError, match="sha256"):
        registry.register(NewModelVersion("default", "ease", sha, sha))
    assert registry.list() == []


def test_a_production_row_pointing_outside_the_cache_deletes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mlrec.db'}"
    registry = open_model_registry(url)
    assert isinstance(registry, SqlModelRegistry)
    segment = _spool(tmp_path)
    # a row written by hand or by an older mlrec: register() now refuses it
    with registry.engine.begin() as conn:
        conn.execute(
            model_versions.insert().values(
                name="default",
                version=1,
                algorithm="ease",
                artifact_sha256="../spool",
                artifact_path="../spool",
                params={},
                dataset="demo",
                metrics={},
                stage="production",
                created_at=datetime.now(UTC),
            )
        )
    cache = tmp_path / "model-cache"
    cache.mkdir()
    server = ModelServer(registry, open_artifact_store(url), cache, "default")

    assert not server.refresh()

    assert segment.read_bytes() == b"events accepted while Kafka was down"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("mlrec.db")) == [
        "model-cache",
        "spool",
    ]
    assert "bad artifact sha256" in (server.last_error or "")


@pytest.mark.parametrize("sha", BAD_SHAS)
def test_fetching_a_bad_sha_touches_no_path(tmp_path: Path, sha: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    cache = tmp_path / "cache" / "inner"
    cache.mkdir(parents=True)
    store = LocalArtifactStore(tmp_path / "models")

    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        fetch_cached(store, sha.replace("/tmp/victim", str(victim)), cache)
    with pytest.raises((ArtifactIntegrityError, NotFoundError)):
        store.fetch("../victim", tmp_path / "out")

    assert (victim / "keep").read_text() == "x"
    assert not store.has("../victim")
    assert not (tmp_path / "out").exists()
