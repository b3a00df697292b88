from pathlib import Path

import pytest

from mlrec.backends.factory import open_model_registry
from mlrec.models.registry import ModelRegistry
from tests.contracts.model_registry import ModelRegistryContract


class TestInMemoryModelRegistry(ModelRegistryContract):
    @pytest.fixture
    def registry(self) -> ModelRegistry:
        return open_model_registry("memory://")


class TestSqliteModelRegistry(ModelRegistryContract):
    @pytest.fixture
    def registry(self, tmp_path: Path) -> ModelRegistry:
        return open_model_registry(f"sqlite:///{tmp_path / 'meta.db'}")


def test_sqlite_registry_survives_reopening(tmp_path: Path) -> None:
    from tests.contracts.model_registry import new

    url = f"sqlite:///{tmp_path / 'meta.db'}"
    open_model_registry(url).register(new())
    assert open_model_registry(url).get("movies").version == 1
