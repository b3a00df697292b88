"""Model artifacts on disk: arrays in ``.npz``, everything else in a JSON manifest.

Never pickle: a tampered pickle runs code when loaded. Arrays are loaded with
``allow_pickle=False`` and the ``.npz`` sha256 is checked against the manifest.

Layout of an artifact directory::

    manifest.json   algorithm, params, ids, sha256 of arrays.npz, format version
    arrays.npz      named numpy arrays (sparse matrices as data/indices/indptr/shape)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mlrec.core.errors import ArtifactIntegrityError, ModelError

__all__ = [
    "FORMAT_VERSION",
    "Artifact",
    "file_sha256",
    "pack_csr",
    "read_artifact",
    "unpack_csr",
    "write_artifact",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


@dataclass
class Artifact:
    """The content of an artifact directory.

    Attributes:
        manifest: JSON-serialisable metadata (``algorithm``, ``params``, ``users``, ...).
        arrays: named numpy arrays.
        sha256: checksum of ``arrays.npz`` (set when written or read).
    """

    manifest: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    sha256: str = ""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pack_csr(prefix: str, matrix: sp.csr_matrix) -> dict[str, npt.NDArray[Any]]:
    """Flatten a CSR matrix into named arrays for :func:`write_artifact`."""
    matrix = sp.csr_matrix(matrix)
    return {
        f"{prefix}.data": matrix.data,
        f"{prefix}.indices": matrix.indices,
        f"{prefix}.indptr": matrix.indptr,
        f"{prefix}.shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def unpack_csr(prefix: str, arrays: dict[str, npt.NDArray[Any]]) -> sp.csr_matrix:
    """Inverse of :func:`pack_csr`."""
    shape = tuple(int(x) for x in arrays[f"{prefix}.shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}.data"], arrays[f"{prefix}.indices"], arrays[f"{prefix}.indptr"]),
        shape=shape,
    )


def write_artifact(directory: Path, artifact: Artifact) -> str:
    """Write ``artifact`` into ``directory`` atomically and return the arrays' sha256.

    The arrays are written first, hashed, and the manifest (carrying the hash) is
    renamed into place last, so a reader never sees a manifest without its arrays.
    """
    directory.mkdir(parents=True, exist_ok=True)
    arrays_path = directory / ARRAYS
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".npz", delete=False) as tmp:
        arrays: dict[str, Any] = dict(artifact.arrays)
        np.savez(tmp, **arrays)
    os.replace(tmp.name, arrays_path)
    sha = file_sha256(arrays_path)
    manifest = {**artifact.manifest, "format_version": FORMAT_VERSION, "arrays_sha256": sha}
    manifest_tmp = directory / (MANIFEST + ".tmp")
    manifest_tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(manifest_tmp, directory / MANIFEST)
    artifact.sha256 = sha
    return sha


def read_artifact(directory: Path, expected_sha256: str | None = None) -> Artifact:
    """Read and verify an artifact directory.

    Args:
        directory: written by :func:`write_artifact`.
        expected_sha256: if given (e.g. from the registry), must match too.

    Raises:
        ModelError: the directory is not an artifact.
        ArtifactIntegrityError: the arrays do not match their recorded checksum.
    """
    manifest_path = directory / MANIFEST
    arrays_path = directory / ARRAYS
    if not manifest_path.is_file() or not arrays_path.is_file():
        raise ModelError(f"{directory} is not a model artifact (no {MANIFEST} / {ARRAYS})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{manifest_path}: not valid JSON ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{manifest_path}: unsupported format {manifest.get('format_version')}")
    sha = file_sha256(arrays_path)
    for label, wanted in (
        ("manifest", manifest.get("arrays_sha256")),
        ("registry", expected_sha256),
    ):
        if wanted is not None and wanted != sha:
            raise ArtifactIntegrityError(
                f"{arrays_path}: sha256 {sha[:12]}… does not match "
                f"the {label} ({str(wanted)[:12]}…)"
            )
    with np.load(arrays_path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return Artifact(manifest=manifest, arrays=arrays, sha256=sha)
