"""Behaviour every FeatureRegistry implementation must have."""

from __future__ import annotations

import dataclasses

import pytest

from mlrec.core.errors import NotFoundError, ValidationError
from mlrec.features.definitions import Entity, Feature, FeatureView, ValueType
from mlrec.features.registry import FeatureRegistry


def profile(ttl: float = 3600.0, **extra: object) -> FeatureView:
    return FeatureView(
        name="user_profile",
        entity="user",
        features=(Feature("age", ValueType.FLOAT, 0.0), Feature("country", ValueType.STRING)),
        ttl_seconds=ttl,
        owner="growth",
        tags={"tier": "gold"},
        **extra,  # type: ignore[arg-type]
    )


class FeatureRegistryContract:
    @pytest.fixture
    def registry(self) -> FeatureRegistry:
        raise NotImplementedError

    def test_apply_creates_version_one_and_round_trips_the_definition(
        self, registry: FeatureRegistry
    ) -> None:
        [applied] = registry.apply([Entity("user", "people")], [profile()])
        assert applied.created and applied.registered.version == 1
        stored = registry.get_view("user_profile")
        assert stored.view == profile()
        assert registry.list_entities() == [Entity("user", "people")]

    def test_reapplying_the_same_definition_changes_nothing(
        self, registry: FeatureRegistry
    ) -> None:
        registry.apply([], [profile()])
        [again] = registry.apply([], [profile()])
        assert not again.created and not again.changed
        assert again.registered.version == 1

    def test_a_changed_definition_gets_the_next_version(self, registry: FeatureRegistry) -> None:
        registry.apply([], [profile(ttl=3600)])
        [changed] = registry.apply([], [profile(ttl=60)])
        assert changed.changed and changed.previous_ttl == 3600
        assert changed.registered.version == 2
        assert registry.get_view("user_profile").view.ttl_seconds == 60
        assert [r.version for r in registry.list_views()] == [2]

    def test_apply_refuses_a_feature_whose_type_changes_and_records_nothing(
        self, registry: FeatureRegistry
    ) -> None:
        registry.apply([], [profile()])
        retyped = dataclasses.replace(
            profile(),
            features=(Feature("age", ValueType.INT, 0), Feature("country", ValueType.STRING)),
        )

        with pytest.raises(ValidationError, match="'age' cannot change type from float to int"):
            registry.apply([], [retyped])

        assert registry.get_view("user_profile").version == 1
        assert registry.get_view("user_profile").view == profile()

    def test_apply_refuses_a_removed_feature_declared_again_with_another_type(
        self, registry: FeatureRegistry
    ) -> None:
        # removing a feature leaves its values stored: declared again as an int, the
        # float bytes of "age" used to be read as garbage ints
        registry.apply([], [profile()])
        country = Feature("country", ValueType.STRING)
        without_age = dataclasses.replace(profile(), features=(country,))
        registry.apply([], [without_age])
        retyped = dataclasses.replace(
            profile(), features=(Feature("age", ValueType.INT, 0), country)
        )

        with pytest.raises(ValidationError, match="'age' cannot change type from float to int"):
            registry.apply([], [retyped])

        assert registry.get_view("user_profile").version == 2
        [again] = registry.apply([], [profile()])  # the same type is welcome back
        assert again.registered.version == 3

    def test_apply_accepts_new_and_removed_features_when_no_type_changes(
        self, registry: FeatureRegistry
    ) -> None:
        registry.apply([], [profile()])
        changed = dataclasses.replace(
            profile(), features=(Feature("age", ValueType.FLOAT, 1.0), Feature("height"))
        )

        [applied] = registry.apply([], [changed])

        assert applied.changed and applied.registered.version == 2

    def test_unknown_view_raises_not_found(self, registry: FeatureRegistry) -> None:
        with pytest.raises(NotFoundError, match="nope"):
            registry.get_view("nope")

    def test_materialization_watermark_is_kept_across_versions(
        self, registry: FeatureRegistry
    ) -> None:
        registry.apply([], [profile()])
        registry.set_materialized_until("user_profile", 1234.5)
        assert registry.get_view("user_profile").materialized_until == 1234.5
        registry.apply([], [profile(ttl=10)])
        assert registry.get_view("user_profile").materialized_until == 1234.5

    def test_concurrent_applies_of_a_new_view_all_succeed_with_one_version(
        self, registry: FeatureRegistry
    ) -> None:
        import threading

        errors: list[BaseException] = []
        for round_ in range(5):
            view = dataclasses.replace(profile(), name=f"user_profile_{round_}")
            start = threading.Barrier(4)

            def apply(view: FeatureView = view, start: threading.Barrier = start) -> None:
                start.wait()
                try:
                    registry.apply([Entity("user", "people")], [view])
                except BaseException as exc:  # collected: a thread cannot fail the test
                    errors.append(exc)

            threads = [threading.Thread(target=apply) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert registry.get_view(view.name).version == 1
        assert errors == []
