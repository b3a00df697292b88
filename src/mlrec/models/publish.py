"""Publishing a trained model: store its artifact, then register it in staging."""

from __future__ import annotations

from pathlib import Path

from mlrec.models.artifact_store import ArtifactStore
from mlrec.models.base import Recommender
from mlrec.models.registry import ModelRegistry, ModelVersion, NewModelVersion

__all__ = ["publish_model"]


def publish_model(
    model: Recommender,
    saved_dir: Path,
    stores: list[ArtifactStore],
    registry: ModelRegistry,
    name: str,
    dataset: str,
    metrics: dict[str, float] | None = None,
) -> ModelVersion:
    """Put a saved artifact into every store (verified), then register it in staging.

    The artifact is stored before it is registered, so the registry never points at
    a missing artifact.

    Args:
        model: the fitted model (for algorithm and params).
        saved_dir: where ``model.save`` wrote it.
        stores: artifact stores to publish to (e.g. the DB and the models volume).
        registry: the model registry.
        name: the model name; versions count per name.
        dataset: what it was trained on.
        metrics: offline evaluation figures.
    """
    if not stores:
        raise ValueError("publish_model needs at least one artifact store")
    shas = {store.put(saved_dir) for store in stores}
    (sha,) = shas
    return registry.register(
        NewModelVersion(
            name=name,
            algorithm=model.algorithm,
            artifact_sha256=sha,
            artifact_path=sha,
            params=model.get_params(),
            dataset=dataset,
            metrics=dict(metrics or {}),
        )
    )
