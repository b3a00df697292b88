"""In-memory implementations of mlrec's storage protocols, for tests and demos.

They behave like the real backends (same contract tests) but keep everything in
process memory, so unit tests need no server.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

from mlrec.core.errors import NotFoundError
from mlrec.features.definitions import Entity, FeatureView
from mlrec.features.registry import AppliedView, RegisteredView, next_version
from mlrec.models.registry import ModelVersion, NewModelVersion, Stage, check_new_version

__all__ = ["InMemoryFeatureRegistry", "InMemoryModelRegistry"]


class InMemoryModelRegistry:
    """:class:`~mlrec.models.registry.ModelRegistry` in a dict, thread-safe."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, int], ModelVersion] = {}
        self._lock = threading.Lock()

    def register(self, model: NewModelVersion) -> ModelVersion:
        check_new_version(model)
        with self._lock:
            latest = max((v for (n, v) in self._versions if n == model.name), default=0)
            version = ModelVersion(
                name=model.name,
                version=latest + 1,
                algorithm=model.algorithm,
                artifact_sha256=model.artifact_sha256,
                artifact_path=model.artifact_path,
                params=dict(model.params),
                dataset=model.dataset,
                metrics=dict(model.metrics),
                stage=Stage.STAGING,
                created_at=datetime.now(UTC),
            )
            self._versions[(model.name, version.version)] = version
            return version

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        with self._lock:
            if version is None:
                versions = [v for (n, v) in self._versions if n == name]
                version = max(versions) if versions else None
            found = self._versions.get((name, version)) if version is not None else None
        if found is None:
            what = f"{name}:{version}" if version is not None else name
            raise NotFoundError(f"no model version {what!r} in the registry")
        return found

    def list(self, name: str | None = None, stage: Stage | None = None) -> list[ModelVersion]:
        with self._lock:
            found = [
                v
                for v in self._versions.values()
                if (name is None or v.name == name) and (stage is None or v.stage is stage)
            ]
        return sorted(found, key=lambda v: (v.created_at, v.version), reverse=True)

    def promote(self, name: str, version: int, stage: Stage = Stage.PRODUCTION) -> ModelVersion:
        self.get(name, version)
        with self._lock:
            if stage is Stage.PRODUCTION:
                for key, other in self._versions.items():
                    if other.name == name and other.stage is Stage.PRODUCTION:
                        self._versions[key] = replace(other, stage=Stage.ARCHIVED)
            promoted = replace(self._versions[(name, version)], stage=stage)
            self._versions[(name, version)] = promoted
            return promoted

    def production(self, name: str) -> ModelVersion | None:
        found = self.list(name, Stage.PRODUCTION)
        return found[0] if found else None


class InMemoryFeatureRegistry:
    """:class:`~mlrec.features.registry.FeatureRegistry` in dicts."""

    def __init__(self) -> None:
        self._entities: dict[str, Entity] = {}
        self._views: dict[str, list[RegisteredView]] = {}
        self._lock = threading.Lock()

    def apply(self, entities: list[Entity], views: list[FeatureView]) -> list[AppliedView]:
        with self._lock:
            for entity in entities:
                self._entities[entity.name] = entity
            applied = []
            for view in views:
                history = self._views.setdefault(view.name, [])
                result = next_version(
                    history[-1] if history else None, view, [r.view for r in history[:-1]]
                )
                if result.created or result.changed:
                    history.append(result.registered)
                applied.append(result)
            return applied

    def get_view(self, name: str) -> RegisteredView:
        with self._lock:
            history = self._views.get(name)
        if not history:
            raise NotFoundError(f"unknown feature view {name!r}")
        return history[-1]

    def list_views(self) -> list[RegisteredView]:
        with self._lock:
            return [self._views[name][-1] for name in sorted(self._views)]

    def list_entities(self) -> list[Entity]:
        with self._lock:
            return [self._entities[name] for name in sorted(self._entities)]

    def set_materialized_until(self, name: str, timestamp: float) -> None:
        current = self.get_view(name)
        with self._lock:
            self._views[name][-1] = replace(current, materialized_until=timestamp)
