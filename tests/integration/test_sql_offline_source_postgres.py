import pytest

from tests.contracts.offline_source import SqlTableSourceContract

pytestmark = pytest.mark.integration


class TestPostgresTableSource(SqlTableSourceContract):
    @pytest.fixture
    def url(self, fresh_database_url: str) -> str:
        return fresh_database_url
