"""Artifacts in the layout of an older mlrec, synthesised from a current model.

Format 1 manifests carry ``format_version: 1`` and the arrays' sha256 alone (no
content ``sha256``); ItemKNN up to commit 7552bfb stored its matrix as
``similarity.*``, and blends of that time had no ``gfcf`` component.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlrec.models import Recommender
from mlrec.models.artifacts import file_sha256, read_artifact


def save_format_1(
    model: Recommender,
    directory: Path,
    rename: Callable[[str], str] = lambda name: name,
    drop_params: tuple[str, ...] = (),
) -> None:
    """Save ``model`` as an older mlrec would have: format 1, arrays renamed."""
    model.save(directory / "_current")
    current = read_artifact(directory / "_current")
    arrays: dict[str, Any] = {rename(name): value for name, value in current.arrays.items()}
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "arrays.npz").open("wb") as handle:
        np.savez(handle, **arrays)
    manifest = {
        key: value
        for key, value in current.manifest.items()
        if key not in ("sha256", "format_version", "arrays_sha256")
    }
    manifest["params"] = {
        key: value for key, value in manifest["params"].items() if key not in drop_params
    }
    manifest["format_version"] = 1
    manifest["arrays_sha256"] = file_sha256(directory / "arrays.npz")
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def similarity_prefix(name: str) -> str:
    """``weights.data`` -> ``similarity.data`` (also inside a blend: ``itemknn/...``)."""
    head, sep, tail = name.rpartition("weights.")
    if head in ("", "itemknn/") and sep:
        return f"{head}similarity.{tail}"
    return name
