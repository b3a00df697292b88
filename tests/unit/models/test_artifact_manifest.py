"""A damaged or foreign artifact is refused with a ModelError, never a raw traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrec.core.errors import ArtifactIntegrityError, ModelError
from mlrec.models import EASE, load_model
from mlrec.models.artifacts import Artifact, pack_csr, unpack_csr, verify_artifact, write_artifact
from tests.unit.models.contract import demo_split


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    directory = tmp_path / "m"
    EASE().fit(demo_split()[0]).save(directory)
    return directory


def test_a_manifest_that_is_not_utf8_is_refused_as_a_damaged_artifact(saved: Path) -> None:
    manifest = saved / "manifest.json"
    manifest.write_bytes(manifest.read_bytes() + b"\xff")
    with pytest.raises(ArtifactIntegrityError, match="not valid UTF-8"):
        verify_artifact(saved)
    with pytest.raises(ArtifactIntegrityError, match="not valid UTF-8"):
        load_model(saved)


def test_a_manifest_that_is_not_json_is_refused_as_a_damaged_artifact(saved: Path) -> None:
    (saved / "manifest.json").write_text('{"algorithm": "ease",')
    with pytest.raises(ArtifactIntegrityError, match="not valid JSON"):
        load_model(saved)


def test_unpack_csr_names_the_missing_arrays() -> None:
    with pytest.raises(ModelError, match=r"lacks the array\(s\) m\.data, m\.indices"):
        unpack_csr("m", {"m.indptr": [0], "m.shape": [0, 0]})  # type: ignore[dict-item]


def test_an_artifact_without_the_models_arrays_is_refused_with_a_model_error(
    saved: Path, tmp_path: Path
) -> None:
    model = EASE.load(saved)
    arrays = pack_csr("user_items", model.user_items)  # but no "weights"
    manifest = {
        "algorithm": "ease",
        "params": model.get_params(),
        "users": model.users.ids(),
        "items": model.items.ids(),
    }
    write_artifact(tmp_path / "odd", Artifact(manifest=manifest, arrays=arrays))
    with pytest.raises(ModelError, match="ease artifact lacks 'weights'"):
        load_model(tmp_path / "odd")
