"""Publishing a trained model: copy its artifact into the models dir, then register it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from mlrec.models.artifacts import read_artifact
from mlrec.models.base import Recommender
from mlrec.models.registry import ModelRegistry, ModelVersion, NewModelVersion

__all__ = ["artifact_dir", "publish_model"]


def artifact_dir(models_dir: Path, name: str, sha256: str) -> Path:
    """Where an artifact lives in the models dir: content-addressed by its sha256."""
    return models_dir / name / sha256


def publish_model(
    model: Recommender,
    saved_dir: Path,
    models_dir: Path,
    registry: ModelRegistry,
    name: str,
    dataset: str,
    metrics: dict[str, float] | None = None,
) -> ModelVersion:
    """Copy a saved artifact to ``<models_dir>/<name>/<sha256>`` and register it in staging.

    The artifact is verified before it is copied, and copied before it is
    registered, so the registry never points at a missing or corrupt artifact.
    """
    artifact = read_artifact(saved_dir)
    target = artifact_dir(models_dir, name, artifact.sha256)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".incoming-"))
        shutil.copytree(saved_dir, tmp, dirs_exist_ok=True)
        try:
            os.rename(tmp, target)
        except OSError:  # another publisher won the race with identical content
            shutil.rmtree(tmp, ignore_errors=True)
    return registry.register(
        NewModelVersion(
            name=name,
            algorithm=model.algorithm,
            artifact_sha256=artifact.sha256,
            artifact_path=str(target.relative_to(models_dir)),
            params=model.get_params(),
            dataset=dataset,
            metrics=dict(metrics or {}),
        )
    )
