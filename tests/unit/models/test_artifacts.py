"""An artifact's content sha256 covers its manifest as well as its arrays; a damaged
cached copy is fetched again from the artifact store."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlrec.core.errors import ArtifactIntegrityError
from mlrec.data import make_demo
from mlrec.models import create_model, load_model
from mlrec.models.artifact_store import (
    CACHED_ARTIFACTS_KEPT,
    LocalArtifactStore,
    fetch_cached,
    load_version,
)
from mlrec.models.artifacts import Artifact, file_sha256, read_artifact, write_artifact
from mlrec.models.registry import ModelVersion, Stage


def edit_manifest(directory: Path, change: Any) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, str]:
    model = create_model("most_popular").fit(make_demo(n_users=20, n_items=15, seed=2))
    return tmp_path / "m", model.save(tmp_path / "m")


def test_the_content_sha256_is_not_the_arrays_sha256(saved: tuple[Path, str]) -> None:
    directory, sha = saved
    assert sha != file_sha256(directory / "arrays.npz")
    assert read_artifact(directory, expected_sha256=sha).sha256 == sha


def test_a_manifest_with_swapped_ids_is_refused(saved: tuple[Path, str]) -> None:
    directory, _ = saved

    def swap_users(manifest: dict[str, Any]) -> None:
        users = manifest["users"]
        users[0], users[1] = users[1], users[0]

    edit_manifest(directory, swap_users)
    with pytest.raises(ArtifactIntegrityError, match="manifest was changed"):
        load_model(directory)


def test_a_manifest_edited_with_its_hash_recomputed_fails_the_registry_check(
    saved: tuple[Path, str],
) -> None:
    directory, registered = saved
    artifact = read_artifact(directory)
    artifact.manifest["params"] = {"tampered": True}
    write_artifact(directory, Artifact(artifact.manifest, artifact.arrays))

    assert read_artifact(directory).sha256 != registered  # consistent with itself...
    with pytest.raises(ArtifactIntegrityError, match="registry"):
        load_model(directory, expected_sha256=registered)  # ...but not what was registered


@pytest.mark.parametrize("missing", ["sha256", "arrays_sha256"])
def test_a_manifest_without_a_checksum_is_refused(saved: tuple[Path, str], missing: str) -> None:
    directory, _ = saved
    edit_manifest(directory, lambda manifest: manifest.pop(missing))
    with pytest.raises(ArtifactIntegrityError):
        load_model(directory)


def test_a_format_1_artifact_still_loads_with_its_arrays_checked(saved: tuple[Path, str]) -> None:
    directory, _ = saved

    def to_format_1(manifest: dict[str, Any]) -> None:
        manifest.pop("sha256")
        manifest["format_version"] = 1

    edit_manifest(directory, to_format_1)
    arrays_sha = file_sha256(directory / "arrays.npz")
    assert read_artifact(directory, expected_sha256=arrays_sha).sha256 == arrays_sha

    edit_manifest(directory, lambda manifest: manifest.update(arrays_sha256="0" * 64))
    with pytest.raises(ArtifactIntegrityError):
        read_artifact(directory)


def test_the_artifact_store_refuses_an_artifact_whose_manifest_changed_in_storage(
    saved: tuple[Path, str], tmp_path: Path
) -> None:
    directory, sha = saved
    store = LocalArtifactStore(tmp_path / "store")
    assert store.put(directory) == sha
    edit_manifest(tmp_path / "store" / sha, lambda manifest: manifest.update(users=["x"]))

    store.fetch(sha, tmp_path / "copy")
    with pytest.raises(ArtifactIntegrityError):
        load_model(tmp_path / "copy", expected_sha256=sha)


def registered(sha: str, directory: Path) -> ModelVersion:
    return ModelVersion(
        "m",
        1,
        "most_popular",
        sha,
        str(directory),
        {},
        "demo",
        {},
        Stage.PRODUCTION,
        datetime.now(UTC),
    )


class CountingStore(LocalArtifactStore):
    """A local store that counts its fetches."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fetches = 0

    def fetch(self, sha256: str, destination: Path) -> None:
        self.fetches += 1
        super().fetch(sha256, destination)


def test_a_damaged_cached_copy_is_fetched_again_from_the_store(
    saved: tuple[Path, str], tmp_path: Path
) -> None:
    directory, sha = saved
    store = LocalArtifactStore(tmp_path / "store")
    store.put(directory)
    cache = tmp_path / "cache"
    cached = fetch_cached(store, sha, cache)
    arrays = cached / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:100])  # a crash or disk error mid-write

    model = load_version(registered(sha, directory), store, cache)
    assert model.algorithm == "most_popular"
    assert read_artifact(cache / sha, expected_sha256=sha).sha256 == sha


def _delete(path: Path) -> None:
    path.unlink()


def _replace_by_a_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "arrays_missing": ("arrays.npz", _delete),
    "manifest_missing": ("manifest.json", _delete),
    "manifest_not_json": ("manifest.json", lambda path: path.write_text("{not json")),
    "manifest_not_utf8": ("manifest.json", lambda path: path.write_bytes(b"\xff\xfe\x00garbage")),
    "manifest_not_an_object": ("manifest.json", lambda path: path.write_text("[]")),
    "manifest_empty": ("manifest.json", lambda path: path.write_bytes(b"")),
    "manifest_a_directory": ("manifest.json", _replace_by_a_directory),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_cached_copy_that_cannot_be_loaded_is_fetched_again_from_the_store(
    saved: tuple[Path, str], tmp_path: Path, damage: str
) -> None:
    """Regression (audit defect 3): only checksum mismatches were healed; a missing
    file or a garbled manifest left the API without a model for good."""
    directory, sha = saved
    store = CountingStore(tmp_path / "store")
    store.put(directory)
    cache = tmp_path / "cache"
    load_version(registered(sha, directory), store, cache)  # fills the cache
    name, damage_file = DAMAGE[damage]
    damage_file(cache / sha / name)

    model = load_version(registered(sha, directory), store, cache)

    assert model.algorithm == "most_popular"
    assert store.fetches == 2  # the first load, then once to heal
    assert read_artifact(cache / sha, expected_sha256=sha).sha256 == sha
    assert [p.name for p in cache.iterdir()] == [sha]  # nothing left behind


def test_a_store_copy_that_does_not_match_the_registry_is_refused_after_one_refetch(
    saved: tuple[Path, str], tmp_path: Path
) -> None:
    directory, sha = saved
    store = CountingStore(tmp_path / "store")
    store.put(directory)
    edit_manifest(tmp_path / "store" / sha, lambda manifest: manifest.update(users=["x"]))
    cache = tmp_path / "cache"

    with pytest.raises(ArtifactIntegrityError):
        load_version(registered(sha, directory), store, cache)
    assert store.fetches == 2  # the cached copy, then the store's once more: no loop


def test_the_model_cache_keeps_only_the_latest_loaded_artifacts(tmp_path: Path) -> None:
    # a long-running replica used to keep every version it ever served on disk
    store = CountingStore(tmp_path / "store")
    versions = []
    for seed in range(CACHED_ARTIFACTS_KEPT + 2):
        model = create_model("most_popular").fit(make_demo(n_users=20, n_items=15, seed=seed))
        directory = tmp_path / f"m{seed}"
        sha = model.save(directory)
        store.put(directory)
        versions.append(registered(sha, directory))
    cache = tmp_path / "cache"
    for version in versions:
        load_version(version, store, cache)
    kept = {v.artifact_sha256 for v in versions[-CACHED_ARTIFACTS_KEPT:]}
    assert {p.name for p in cache.iterdir()} == kept

    fetches = store.fetches
    load_version(versions[-1], store, cache)  # still cached: no fetch, nothing dropped
    assert store.fetches == fetches and {p.name for p in cache.iterdir()} == kept
    load_version(versions[0], store, cache)  # dropped earlier: fetched again
    assert store.fetches == fetches + 1
    assert versions[0].artifact_sha256 in {p.name for p in cache.iterdir()}
    assert len(list(cache.iterdir())) == CACHED_ARTIFACTS_KEPT
