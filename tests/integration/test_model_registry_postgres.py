import pytest

from mlrec.backends.factory import open_model_registry
from mlrec.models.registry import ModelRegistry
from tests.contracts.model_registry import ModelRegistryContract
from tests.integration.pg import reset_schema

pytestmark = pytest.mark.integration


class TestPostgresModelRegistry(ModelRegistryContract):
    @pytest.fixture
    def registry(self, database_url: str) -> ModelRegistry:
        reset_schema(database_url)
        return open_model_registry(database_url)
