"""API settings that would start a server that cannot work are refused at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrec.core.settings import CommonSettings, load_settings
from mlrec.services.api.config import ApiSettings
from mlrec.services.api.deps import require_admin
from tests.settings_errors import refused as refused_by


def refused(variable: str, value: str, monkeypatch: pytest.MonkeyPatch) -> str:
    return refused_by(variable, value, monkeypatch, ApiSettings)


@pytest.mark.parametrize("name", ["movies ", "bad:name", "\udcff"])
def test_a_model_name_the_registry_refuses_is_refused_at_start(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it could never have a production version: the API served popular items only
    assert "a model name must be" in refused("MLREC_MODEL_NAME", name, monkeypatch)


def test_an_admin_token_read_with_its_trailing_newline_still_authenticates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLREC_ADMIN_TOKEN", "s3cret\n")  # a secret mounted from a file
    settings = load_settings(ApiSettings)
    require_admin(settings, "Bearer s3cret")  # raises 401 if refused


def test_a_blank_admin_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "blank" in refused("MLREC_ADMIN_TOKEN", "  ", monkeypatch)


@pytest.mark.parametrize("variable", ["MLREC_BATCH_WAIT_MS", "MLREC_FEATURE_TIMEOUT_SECONDS"])
def test_nan_in_a_float_setting_is_called_not_finite(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "finite number" in refused(variable, "nan", monkeypatch)


def test_a_blank_host_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "is not an interface" in refused("MLREC_HOST", "  ", monkeypatch)


def test_a_home_relative_directory_is_expanded_not_created_in_the_cwd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # an env file or a container spec passes "~" literally: no shell expands it
    monkeypatch.setenv("MLREC_DATA_DIR", "~/mlrec-data")
    monkeypatch.setenv("MLREC_MODELS_DIR", "~/mlrec-models")
    monkeypatch.setenv("MLREC_MODEL_CACHE_DIR", "~/mlrec-cache")
    settings = load_settings(ApiSettings)
    assert settings.data_dir == Path.home() / "mlrec-data"
    assert settings.resolved_models_dir == Path.home() / "mlrec-models"
    assert settings.resolved_model_cache_dir == Path.home() / "mlrec-cache"
    assert load_settings(CommonSettings).data_dir == Path.home() / "mlrec-data"
