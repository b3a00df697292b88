"""A damaged or foreign artifact is refused with a ModelError, never a raw traceback."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlrec.core.errors import ArtifactIntegrityError, ModelError
from mlrec.models import EASE, load_model
from mlrec.models.artifacts import (
    Artifact,
    content_sha256,
    file_sha256,
    pack_csr,
    read_artifact,
    unpack_csr,
    verify_artifact,
    write_artifact,
)
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


def _rewrite(directory: Path, target: Path, change: Callable[[Artifact], None]) -> Path:
    """A copy of the artifact at ``directory``, changed, with its checksums recomputed
    (what another mlrec, or someone editing the files, would write)."""
    artifact = read_artifact(directory)
    artifact.manifest.pop("sha256", None)
    change(artifact)
    write_artifact(target, Artifact(manifest=artifact.manifest, arrays=artifact.arrays))
    return target


_FOREIGN_MANIFESTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "params not an object": lambda m: m.update(params=[1]),
    "users not a list": lambda m: m.update(users=5),
    "items not strings": lambda m: m.update(items=list(range(len(m["items"])))),
    "repeated user ids": lambda m: m.update(users=m["users"][:-1] + m["users"][:1]),
    "fewer users than rows": lambda m: m.update(users=m["users"][:10]),
    "fewer items than columns": lambda m: m.update(items=m["items"][:10]),
    "item_info of strings": lambda m: m.update(item_info={m["items"][0]: "a title"}),
    "item_info without a title": lambda m: m.update(item_info={m["items"][0]: {}}),
}


_FOREIGN_ARRAYS: dict[str, Callable[[dict[str, Any]], None]] = {
    "weights of another shape": lambda a: a.update(weights=np.zeros((3, 3), np.float32)),
    "weights as text": lambda a: a.update(weights=np.array(["a", "b"])),
    "user_items with a short indptr": lambda a: a.update(
        {"user_items.indptr": np.zeros(3, np.int32)}
    ),
}
_FOREIGN: dict[str, Callable[[Artifact], None]] = {
    **{f"manifest: {n}": (lambda a, f=f: f(a.manifest)) for n, f in _FOREIGN_MANIFESTS.items()},
    **{f"arrays: {n}": (lambda a, f=f: f(a.arrays)) for n, f in _FOREIGN_ARRAYS.items()},
}


@pytest.mark.parametrize("change", list(_FOREIGN), ids=list(_FOREIGN))
def test_an_artifact_of_another_layout_is_refused_with_a_model_error(
    saved: Path, tmp_path: Path, change: str
) -> None:
    # its checksums match: another mlrec wrote it, or someone edited it and rehashed
    odd = _rewrite(saved, tmp_path / "odd", _FOREIGN[change])
    with pytest.raises(ModelError, match=r"cannot read|does not fit|manifest"):
        load_model(odd)
    with pytest.raises(ModelError):
        EASE.load(odd)


def _with_arrays_file(saved: Path, target: Path, content: bytes) -> Path:
    """A copy of the artifact whose ``arrays.npz`` holds ``content``, checksums recomputed."""
    odd = _rewrite(saved, target, lambda a: None)
    (odd / "arrays.npz").write_bytes(content)
    manifest = json.loads((odd / "manifest.json").read_text())
    manifest["arrays_sha256"] = file_sha256(odd / "arrays.npz")
    manifest["sha256"] = content_sha256(manifest)
    (odd / "manifest.json").write_text(json.dumps(manifest))
    return odd


def test_arrays_npz_that_is_not_a_zip_is_refused_with_a_model_error(
    saved: Path, tmp_path: Path
) -> None:
    odd = _with_arrays_file(saved, tmp_path / "odd", b"not a zip file")
    with pytest.raises(ModelError, match=r"arrays\.npz cannot be read as model arrays"):
        load_model(odd)


def test_arrays_npz_holding_pickled_objects_is_refused_with_a_model_error(
    saved: Path, tmp_path: Path
) -> None:
    arrays = dict(read_artifact(saved).arrays)
    arrays["weights"] = np.array([{"a": 1}], dtype=object)  # loading it would unpickle
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    odd = _with_arrays_file(saved, tmp_path / "odd", buffer.getvalue())
    with pytest.raises(ModelError, match=r"arrays\.npz cannot be read as model arrays"):
        load_model(odd)


def test_an_array_header_claiming_more_data_than_its_member_holds_is_refused(
    saved: Path, tmp_path: Path
) -> None:
    # rehashed by whoever crafted it: numpy allocated the declared 10^12 elements
    # (7 TiB) before reading, and the CLI died with a MemoryError traceback
    arrays = dict(read_artifact(saved).arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with zipfile.ZipFile(buffer) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    name = next(iter(members))
    original = io.BytesIO(members[name])
    np.lib.format.read_magic(original)
    _shape, fortran, dtype = np.lib.format.read_array_header_1_0(original)
    header = io.BytesIO()
    claim = {"descr": dtype.str, "fortran_order": fortran, "shape": (10**12,)}
    np.lib.format.write_array_header_1_0(header, claim)
    members[name] = header.getvalue() + original.read()
    crafted = io.BytesIO()
    with zipfile.ZipFile(crafted, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    odd = _with_arrays_file(saved, tmp_path / "odd", crafted.getvalue())

    with pytest.raises(ModelError, match=r"declares .* but holds"):
        load_model(odd)
