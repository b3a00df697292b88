"""Behaviour every ModelRegistry implementation must have.

A test module subclasses :class:`ModelRegistryContract` and provides ``registry``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlrec.core.errors import NotFoundError, ValidationError
from mlrec.models.registry import MAX_MODEL_VERSION, ModelRegistry, NewModelVersion, Stage


def new(name: str = "movies", sha: str = "a" * 64, **kw: object) -> NewModelVersion:
    return NewModelVersion(
        name=name,
        algorithm="ease",
        artifact_sha256=sha,
        artifact_path=f"{name}/{sha}",
        params={"l2": 250.0, "binary": True},
        dataset="ml-100k",
        metrics={"ndcg@10": 0.5},
        **kw,  # type: ignore[arg-type]
    )


class ModelRegistryContract:
    @pytest.fixture
    def registry(self) -> ModelRegistry:
        raise NotImplementedError

    def test_register_assigns_increasing_versions_per_name(self, registry: ModelRegistry) -> None:
        assert registry.register(new("a")).version == 1
        assert registry.register(new("a")).version == 2
        assert registry.register(new("b")).version == 1

    def test_register_stores_every_field_in_staging(self, registry: ModelRegistry) -> None:
        stored = registry.register(new())
        got = registry.get("movies", stored.version)
        assert got == stored
        assert got.stage is Stage.STAGING
        assert got.params == {"l2": 250.0, "binary": True}
        assert got.metrics == {"ndcg@10": 0.5}
        assert got.created_at.tzinfo is not None
        assert got.ref == "movies:1"

    def test_get_without_version_returns_latest(self, registry: ModelRegistry) -> None:
        registry.register(new())
        registry.register(new(sha="b" * 64))
        assert registry.get("movies").artifact_sha256 == "b" * 64

    def test_get_unknown_raises_not_found(self, registry: ModelRegistry) -> None:
        with pytest.raises(NotFoundError):
            registry.get("nope")
        registry.register(new())
        with pytest.raises(NotFoundError):
            registry.get("movies", 7)

    def test_promote_to_production_archives_the_previous_one(self, registry: ModelRegistry) -> None:
        registry.register(new())
        registry.register(new())
        registry.promote("movies", 1)
        assert registry.production("movies").version == 1  # type: ignore[union-attr]
        registry.promote("movies", 2)
        assert registry.production("movies").version == 2  # type: ignore[union-attr]
        assert registry.get("movies", 1).stage is Stage.ARCHIVED
        assert [v.version for v in registry.list("movies", Stage.PRODUCTION)] == [2]

    def test_production_is_none_before_any_promotion(self, registry: ModelRegistry) -> None:
        registry.register(new())
        assert registry.production("movies") is None

    def test_promote_unknown_version_raises_not_found(self, registry: ModelRegistry) -> None:
        with pytest.raises(NotFoundError):
            registry.promote("movies", 3)

    def test_list_filters_by_name_and_stage_newest_first(self, registry: ModelRegistry) -> None:
        registry.register(new("a"))
        registry.register(new("b"))
        registry.register(new("a"))
        assert [v.ref for v in registry.list("a")] == ["a:2", "a:1"]
        assert {v.name for v in registry.list()} == {"a", "b"}
        assert registry.list(stage=Stage.ARCHIVED) == []

    def test_concurrent_registers_get_distinct_versions(self, registry: ModelRegistry) -> None:
        with ThreadPoolExecutor(4) as pool:
            versions = list(pool.map(lambda _: registry.register(new("c")).version, range(8)))
        assert sorted(versions) == list(range(1, 9))

    @pytest.mark.parametrize("name", ["", "a:b", "x[/]", "has space", "-dash", "é", "n" * 129])
    def test_register_refuses_a_name_outside_the_name_rule(
        self, registry: ModelRegistry, name: str
    ) -> None:
        with pytest.raises(ValidationError, match="a model name must be"):
            registry.register(new(name))
        assert registry.list() == []

    def test_register_accepts_every_name_the_rule_allows(self, registry: ModelRegistry) -> None:
        for name in ("movies-ease_v2.1", "7", "A" * 128):
            assert registry.register(new(name)).ref == f"{name}:1"

    @pytest.mark.parametrize("version", [0, -1, MAX_MODEL_VERSION + 1, 10**20])
    def test_get_of_a_version_no_registry_can_hold_is_not_found(
        self, registry: ModelRegistry, version: int
    ) -> None:
        registry.register(new())
        with pytest.raises(NotFoundError, match="no model version"):
            registry.get("movies", version)

    def test_concurrent_promotions_leave_one_production_version(
        self, registry: ModelRegistry
    ) -> None:
        for _ in range(6):
            registry.register(new("p"))
        for _ in range(3):
            barrier = threading.Barrier(6)

            def promote(version: int, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()  # all six promotions start together
                registry.promote("p", version)

            with ThreadPoolExecutor(6) as pool:
                list(pool.map(promote, range(1, 7)))
            production = registry.list("p", Stage.PRODUCTION)
            assert len(production) == 1
            others = {v.stage for v in registry.list("p") if v.version != production[0].version}
            assert others == {Stage.ARCHIVED}

    def test_promoting_the_production_version_again_keeps_it_in_production(
        self, registry: ModelRegistry
    ) -> None:
        registry.register(new())
        registry.register(new())
        registry.promote("movies", 1)
        assert registry.promote("movies", 1).stage is Stage.PRODUCTION
        assert registry.production("movies").version == 1  # type: ignore[union-attr]
        assert registry.get("movies", 2).stage is Stage.STAGING

    def test_archiving_the_production_version_leaves_none_in_production(
        self, registry: ModelRegistry
    ) -> None:
        registry.register(new())
        registry.promote("movies", 1)
        assert registry.promote("movies", 1, Stage.ARCHIVED).stage is Stage.ARCHIVED
        assert registry.production("movies") is None
        registry.promote("movies", 1)  # an archived version can serve again
        assert registry.production("movies").version == 1  # type: ignore[union-attr]
