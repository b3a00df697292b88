import pytest

from mlrec.backends.factory import open_feature_registry
from mlrec.features.registry import FeatureRegistry
from tests.contracts.feature_registry import FeatureRegistryContract

pytestmark = pytest.mark.integration


class TestPostgresFeatureRegistry(FeatureRegistryContract):
    @pytest.fixture
    def registry(self, fresh_database_url: str) -> FeatureRegistry:
        return open_feature_registry(fresh_database_url)
