import pytest
from sqlalchemy import text
from tests.contracts.feature_registry import FeatureRegistryContract

from mlrec.backends.factory import open_feature_registry
from mlrec.backends.sql.engine import create_sql_engine
from mlrec.features.registry import FeatureRegistry

pytestmark = pytest.mark.integration


class TestPostgresFeatureRegistry(FeatureRegistryContract):
    @pytest.fixture
    def registry(self, database_url: str) -> FeatureRegistry:
        engine = create_sql_engine(database_url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "DROP TABLE IF EXISTS feature_views, feature_entities, model_versions, model_artifacts,"
                    " alembic_version"
                )
            )
        engine.dispose()
        return open_feature_registry(database_url)
