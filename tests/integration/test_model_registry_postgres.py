import pytest

from mlrec.backends.factory import open_model_registry
from mlrec.models.registry import ModelRegistry
from tests.contracts.model_registry import ModelRegistryContract

pytestmark = pytest.mark.integration


class TestPostgresModelRegistry(ModelRegistryContract):
    @pytest.fixture
    def registry(self, fresh_database_url: str) -> ModelRegistry:
        return open_model_registry(fresh_database_url)
