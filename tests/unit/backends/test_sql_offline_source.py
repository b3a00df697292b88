from pathlib import Path

import pytest

from tests.contracts.offline_source import SqlTableSourceContract


class TestSqliteTableSource(SqlTableSourceContract):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'offline.db'}"
