import pytest

from mlrec.backends.factory import open_feature_registry
from mlrec.features.registry import FeatureRegistry
from tests.contracts.feature_registry import FeatureRegistryContract
from tests.integration.pg import reset_schema

pytestmark = pytest.mark.integration


class TestPostgresFeatureRegistry(FeatureRegistryContract):
    @pytest.fixture
    def registry(self, database_url: str) -> FeatureRegistry:
        reset_schema(database_url)
        return open_feature_registry(database_url)
