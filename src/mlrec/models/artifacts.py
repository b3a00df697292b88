"""Model artifacts on disk: arrays in ``.npz``, everything else in a JSON manifest.

Never pickle: a tampered pickle runs code when loaded. Arrays are loaded with
``allow_pickle=False``.

Layout of an artifact directory::

    manifest.json   algorithm, params, ids, format version, arrays_sha256, sha256
    arrays.npz      named numpy arrays (sparse matrices as data/indices/indptr/shape)

An artifact's identity is its **content sha256**: a hash of ``arrays.npz``'s sha256
and of the canonical JSON of the manifest (every key but ``sha256``), so the ids,
params and item data are covered as well as the arrays. The manifest records it;
the registry records it too and is the trusted copy (a manifest's own hash only
catches corruption, since whoever edits a file can recompute it). Artifacts of
format 1 (an older mlrec) were identified by the arrays' sha256 alone; they still
load, with that check.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile
import zlib
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
    "content_sha256",
    "file_sha256",
    "pack_csr",
    "read_artifact",
    "sha256_problem",
    "unpack_csr",
    "verify_artifact",
    "write_artifact",
]

FORMAT_VERSION = 2
_LEGACY_FORMAT = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"

_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_problem(value: object) -> str | None:
    """What is wrong with an artifact's content sha256 (64 lowercase hex digits), or None.

    A sha256 names a directory in the models directory and the artifact cache: any
    other text (``../spool``, an absolute path) read from a registry row would name a
    path outside them, which fetching (and discarding a stale copy) would write or
    delete.
    """
    if isinstance(value, str) and _SHA256.fullmatch(value) is not None:
        return None
    shown = repr(value[:80]) + "…" if isinstance(value, str) and len(value) > 80 else repr(value)
    return f"bad artifact sha256 {shown}: expected 64 lowercase hexadecimal digits"


@dataclass
class Artifact:
    """The content of an artifact directory.

    Attributes:
        manifest: JSON-serialisable metadata (``algorithm``, ``params``, ``users``, ...).
        arrays: named numpy arrays.
        sha256: the content sha256 (set when written or read; see the module docstring).
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
    """Inverse of :func:`pack_csr`.

    Raises:
        ModelError: an array of the matrix is missing.
    """
    missing = [
        f"{prefix}.{part}"
        for part in ("data", "indices", "indptr", "shape")
        if f"{prefix}.{part}" not in arrays
    ]
    if missing:
        raise ModelError(f"the artifact lacks the array(s) {', '.join(missing)}")
    shape = tuple(int(x) for x in arrays[f"{prefix}.shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}.data"], arrays[f"{prefix}.indices"], arrays[f"{prefix}.indptr"]),
        shape=shape,
    )


def content_sha256(manifest: dict[str, Any]) -> str:
    """The content sha256 of an artifact from its manifest (which carries the arrays'
    sha256): the manifest's canonical JSON, without its own ``sha256`` key, hashed."""
    core = {key: value for key, value in manifest.items() if key != "sha256"}
    canonical = json.dumps(core, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"mlrec-artifact\n{canonical}".encode()).hexdigest()


def write_artifact(directory: Path, artifact: Artifact) -> str:
    """Write ``artifact`` into ``directory`` atomically and return its content sha256.

    The arrays are written first, hashed, and the manifest (carrying both hashes) is
    renamed into place last, so a reader never sees a manifest without its arrays.
    """
    directory.mkdir(parents=True, exist_ok=True)
    arrays_path = directory / ARRAYS
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".npz", delete=False) as tmp:
        arrays: dict[str, Any] = dict(artifact.arrays)
        np.savez(tmp, **arrays)
    os.replace(tmp.name, arrays_path)
    manifest = {
        **artifact.manifest,
        "format_version": FORMAT_VERSION,
        "arrays_sha256": file_sha256(arrays_path),
    }
    sha = manifest["sha256"] = content_sha256(manifest)
    manifest_tmp = directory / (MANIFEST + ".tmp")
    manifest_tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(manifest_tmp, directory / MANIFEST)
    artifact.sha256 = sha
    return sha


def verify_artifact(directory: Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """Check an artifact directory's checksums without loading its arrays.

    Args:
        directory: written by :func:`write_artifact`.
        expected_sha256: if given (e.g. from the registry), must match too.

    Returns:
        the manifest.

    Raises:
        ModelError: the directory is not an artifact.
        ArtifactIntegrityError: the content does not match its recorded checksums
            (or a checksum is missing).
    """
    manifest_path = directory / MANIFEST
    arrays_path = directory / ARRAYS
    if not manifest_path.is_file() or not arrays_path.is_file():
        raise ModelError(f"{directory} is not a model artifact (no {MANIFEST} / {ARRAYS})")
    try:
        manifest = json.loads(manifest_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ArtifactIntegrityError(
            f"{manifest_path}: damaged manifest: byte {exc.start} is not valid UTF-8"
        ) from None
    except json.JSONDecodeError as exc:
        raise ArtifactIntegrityError(
            f"{manifest_path}: damaged manifest: not valid JSON ({exc})"
        ) from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{manifest_path}: not a manifest (a JSON object)")
    version = manifest.get("format_version")
    if version not in (FORMAT_VERSION, _LEGACY_FORMAT):
        raise ModelError(f"{manifest_path}: unsupported format {version}")
    arrays_sha = file_sha256(arrays_path)
    recorded_arrays = manifest.get("arrays_sha256")
    if recorded_arrays is None:
        raise ArtifactIntegrityError(f"{manifest_path}: no arrays_sha256: cannot verify")
    if recorded_arrays != arrays_sha:
        raise ArtifactIntegrityError(
            f"{arrays_path}: sha256 {arrays_sha[:12]}… does not match "
            f"the manifest ({str(recorded_arrays)[:12]}…)"
        )
    if version == _LEGACY_FORMAT:
        sha = arrays_sha
    else:
        sha = content_sha256(manifest)
        if manifest.get("sha256") != sha:
            raise ArtifactIntegrityError(
                f"{manifest_path}: content sha256 {sha[:12]}… does not match the one "
                f"recorded ({str(manifest.get('sha256'))[:12]}…): the manifest was changed"
            )
    if expected_sha256 is not None and expected_sha256 != sha:
        raise ArtifactIntegrityError(
            f"{directory}: content sha256 {sha[:12]}… does not match "
            f"the registry ({expected_sha256[:12]}…)"
        )
    manifest["sha256"] = sha
    return manifest


def read_artifact(directory: Path, expected_sha256: str | None = None) -> Artifact:
    """Read and verify an artifact directory (see :func:`verify_artifact`).

    Raises:
        ModelError: not an artifact, or its arrays cannot be read (not an ``.npz``,
            or arrays of Python objects, which are never unpickled).
        ArtifactIntegrityError: see :func:`verify_artifact`.
    """
    manifest = verify_artifact(directory, expected_sha256)
    try:
        _check_array_sizes(directory / ARRAYS)
        with np.load(directory / ARRAYS, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # not an .npz, a truncated one, or object arrays (loading them would unpickle)
        raise ModelError(f"{directory / ARRAYS} cannot be read as model arrays: {exc}") from None
    except MemoryError:
        raise ModelError(f"{directory / ARRAYS} holds arrays too large for this machine") from None
    return Artifact(manifest=manifest, arrays=arrays, sha256=manifest["sha256"])


def _check_array_sizes(path: Path) -> None:
    """Refuse an ``.npz`` member whose ``.npy`` header declares more data than the
    member holds: numpy allocates the declared shape before reading, so a rehashed
    file claiming 10^12 elements failed with a MemoryError of terabytes.

    Raises:
        ValueError: a header that is not ``.npy``'s, or a member too short for it.
    """
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _fortran, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _fortran, dtype = np.lib.format.read_array_header_2_0(member)
                else:  # 3.0 only serves structured field names outside latin-1
                    raise ValueError(f"{info.filename}: .npy format {version} is not used here")
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                available = info.file_size - member.tell()
            if declared > available:
                raise ValueError(
                    f"{info.filename} declares {declared} bytes of {dtype} {shape} "
                    f"but holds {available}"
                )
