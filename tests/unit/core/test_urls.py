import pytest

from mlrec.backends.sql.engine import normalise_url
from mlrec.core import ConfigurationError
from mlrec.core.urls import normalise_database_url


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("sqlite:///data/mlrec.db", "sqlite:///data/mlrec.db"),
        ("sqlite://", "sqlite://"),
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+psycopg2://h/db", "postgresql+psycopg2://h/db"),
    ],
)
def test_supported_urls_get_the_psycopg_driver_when_plain(url: str, normalised: str) -> None:
    assert normalise_database_url(url) == normalised
    assert normalise_url(url) == normalised  # the SQL engine applies the same rule


@pytest.mark.parametrize("url", ["postgresqlx://u:s3cret@h/db", "mysql://u:s3cret@h/db"])
def test_an_unsupported_scheme_is_refused_without_showing_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported database URL") as info:
        normalise_database_url(url)
    assert "s3cret" not in str(info.value)
