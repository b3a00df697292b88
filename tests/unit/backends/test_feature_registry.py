from pathlib import Path

import pytest

from mlrec.backends.factory import open_feature_registry
from mlrec.features.registry import FeatureRegistry
from tests.contracts.feature_registry import FeatureRegistryContract


class TestInMemoryFeatureRegistry(FeatureRegistryContract):
    @pytest.fixture
    def registry(self) -> FeatureRegistry:
        return open_feature_registry("memory://")


class TestSqliteFeatureRegistry(FeatureRegistryContract):
    @pytest.fixture
    def registry(self, tmp_path: Path) -> FeatureRegistry:
        return open_feature_registry(f"sqlite:///{tmp_path / 'meta.db'}")
