import pytest
from sqlalchemy import text
from tests.contracts.model_registry import ModelRegistryContract

from mlrec.backends.factory import open_model_registry
from mlrec.backends.sql.engine import create_sql_engine
from mlrec.models.registry import ModelRegistry

pytestmark = pytest.mark.integration


class TestPostgresModelRegistry(ModelRegistryContract):
    @pytest.fixture
    def registry(self, database_url: str) -> ModelRegistry:
        engine = create_sql_engine(database_url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "DROP TABLE IF EXISTS feature_views, feature_entities, model_versions, model_artifacts,"
                    " alembic_version"
                )
            )
        engine.dispose()
        return open_model_registry(database_url)
