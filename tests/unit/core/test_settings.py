from pathlib import Path

import pytest

from mlrec.core import ConfigurationError
from mlrec.core.settings import CommonSettings, Environment, load_settings


def test_defaults_are_embedded_and_derive_from_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLREC_DATA_DIR", str(tmp_path))
    settings = load_settings(CommonSettings)
    assert settings.environment is Environment.LOCAL
    assert settings.redis_url is None and settings.kafka_bootstrap_servers is None
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'mlrec.db'}"
    assert settings.resolved_models_dir == tmp_path / "models"


def test_cors_origins_accept_json_list_or_comma_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLREC_CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    assert load_settings(CommonSettings).cors_origins == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("MLREC_CORS_ORIGINS", "https://a.example, https://b.example")
    assert load_settings(CommonSettings).cors_origins == ["https://a.example", "https://b.example"]


def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLREC_REDIS_URL", "http://localhost:6379")
    with pytest.raises(ConfigurationError, match=r"MLREC_REDIS_URL: .*redis://"):
        load_settings(CommonSettings)
    monkeypatch.delenv("MLREC_REDIS_URL")
    monkeypatch.setenv("MLREC_ENVIRONMENT", "moon")
    with pytest.raises(ConfigurationError, match="MLREC_ENVIRONMENT"):
        load_settings(CommonSettings)


def test_debug_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLREC_ENVIRONMENT", "production")
    monkeypatch.setenv("MLREC_DEBUG", "true")
    with pytest.raises(ConfigurationError, match="MLREC_DEBUG"):
        load_settings(CommonSettings)


def test_an_empty_variable_means_unset_not_the_current_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLREC_DATA_DIR", "")
    monkeypatch.setenv("MLREC_REDIS_URL", "")
    settings = load_settings(CommonSettings)
    assert settings.data_dir == Path.home() / ".local" / "share" / "mlrec"
    assert settings.redis_url is None


def test_a_bad_cors_origin_names_mlrec_cors_origins_and_the_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLREC_CORS_ORIGINS", '["https://a.example", 2]')
    with pytest.raises(ConfigurationError) as info:
        load_settings(CommonSettings)
    message = str(info.value)
    assert "MLREC_CORS_ORIGINS (item 1): Input should be a valid string" in message
    assert "MLREC_CORS_ORIGINS_" not in message


@pytest.mark.parametrize(
    "url", ["postgresqlx://x", "postgresql+://h/db", "mysql://h/db", "sqlite", "postgres+pg://h"]
)
def test_a_database_url_of_an_unsupported_scheme_names_mlrec_database_url(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_DATABASE_URL", url)
    with pytest.raises(ConfigurationError, match=r"MLREC_DATABASE_URL: .*postgresql://"):
        load_settings(CommonSettings)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///x.db",
        "postgresql://u:p@h:5432/db",
        "postgresql+psycopg://h/db",
        "postgres://h/db",
    ],
)
def test_every_database_url_the_engine_accepts_passes(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_DATABASE_URL", url)
    assert load_settings(CommonSettings).database_url == url
