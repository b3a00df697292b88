"""Server URLs in the settings: a value the backend cannot use fails at load, naming
the variable and what is wrong (never the password), not later with a traceback or
a 30 s wait for a server that cannot exist."""

from __future__ import annotations

import pytest

from mlrec.backends.redis_features import RedisOnlineStore
from mlrec.core import ConfigurationError
from mlrec.core.settings import CommonSettings, load_settings
from mlrec.core.urls import redact_url
from tests.settings_errors import refused


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_database_url_is_refused(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every connection opens a new empty database: "no such table" tracebacks
    message = refused("MLREC_DATABASE_URL", url, monkeypatch)
    assert "in-memory" in message and "sqlite:///PATH" in message


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("postgresql://u:s3cret@db:abc/x", "db:abc"),
        ("postgresql+psycopg://u:s3cret@[::1/x", "[::1"),
    ],
)
def test_a_database_url_whose_port_is_not_a_number_is_refused_by_name(
    url: str, location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = refused("MLREC_DATABASE_URL", url, monkeypatch)
    assert f"bad host:port {location!r}" in message


def test_a_database_url_with_bytes_that_are_not_utf8_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what os.environ holds for a byte such as 0xff that is not UTF-8
    message = refused("MLREC_DATABASE_URL", "postgresql://s3cret\udcff@h/db", monkeypatch)
    assert "not UTF-8" in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://:s3cret@h:abc/0", "bad host:port 'h:abc'"),
        ("redis://:s3cret@h:99999/0", "bad host:port 'h:99999'"),
        ("redis://h:6379/abc", "database in the path must be a number"),
        ("unix://", "needs the socket's path"),
        ("redis://\udcff/0", "not UTF-8"),
    ],
)
def test_a_redis_url_the_client_cannot_use_is_refused_by_name(
    url: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert problem in refused("MLREC_REDIS_URL", url, monkeypatch)


@pytest.mark.parametrize(
    "url", ["redis://", "redis://h:6379/2", "rediss://:pw@h:6380", "unix:///run/redis.sock"]
)
def test_usable_redis_urls_are_kept(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLREC_REDIS_URL", url)
    assert load_settings(CommonSettings).redis_url == url


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("localhost:abc", "the port must be a number from 1 to 65535"),
        ("broker:99999", "the port must be a number from 1 to 65535"),
        ("http://broker:9092", "unsupported scheme http://"),
        ("a:9092;b:9092", "is not a host name or address"),
        (" , ", "an empty entry"),
        ("[::1", "is not a host name or address"),
        ("broker\udcff:9092", "not UTF-8"),
    ],
)
def test_a_kafka_bootstrap_list_that_is_not_host_port_is_refused_by_name(
    value: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert problem in refused("MLREC_KAFKA_BOOTSTRAP_SERVERS", value, monkeypatch)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("localhost:9092", "localhost:9092"),
        ("a:9092, b:9093", "a:9092,b:9093"),
        ("broker", "broker"),
        ("kafka://broker:9092", "broker:9092"),
        ("[::1]:9092", "[::1]:9092"),
        ("SASL_SSL://broker:9093", "SASL_SSL://broker:9093"),
        ("  ", None),
    ],
)
def test_kafka_bootstrap_lists_the_client_accepts_are_kept(
    value: str, kept: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_KAFKA_BOOTSTRAP_SERVERS", value)
    assert load_settings(CommonSettings).kafka_bootstrap_servers == kept


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:s3cret@h/0", "redis://user:***@h/0"),
        ("redis://s3cret@h", "redis://***@h"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_redis_store_never_shows_the_password_of_a_url_it_refuses() -> None:
    with pytest.raises(ConfigurationError) as refused:
        RedisOnlineStore("redis://:s3cret@h:6379/0?socket_timeout=soon")
    assert "s3cret" not in str(refused.value) and "***" in str(refused.value)
