"""Fixtures shared by the whole suite.

The integration fixtures hand out the addresses of the real servers started by
``scripts/services.sh up`` (which prints them, and writes them to
``$MLREC_SERVICES_DIR/env``); ``scripts/with-services.sh CMD`` starts the servers,
exports the variables and runs CMD. ``make test`` goes through it.

Without the variables a test that needs a server is skipped locally, with the
command that fixes it, but *fails* under CI (``CI=true``): a CI run that
silently skipped every integration test would look green and prove nothing.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

_HOW_TO_START = (
    "start the servers with `scripts/services.sh up` and export what it prints "
    "(or run the tests through `scripts/with-services.sh`, as `make test` does)"
)


def _running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def service_env(name: str) -> str:
    """Return environment variable ``name``, or skip (fail under CI) the test needing it."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    message = f"{name} is not set: {_HOW_TO_START}"
    if _running_in_ci():
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``redis://127.0.0.1:6390/0``-style URL of the test Redis (MLREC_TEST_REDIS_URL)."""
    return service_env("MLREC_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def database_url() -> str:
    """SQLAlchemy URL of the test PostgreSQL (MLREC_TEST_DATABASE_URL)."""
    return service_env("MLREC_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """``host:port`` bootstrap servers of the test Kafka broker (MLREC_TEST_KAFKA_BOOTSTRAP)."""
    return service_env("MLREC_TEST_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="session")
def prometheus_url() -> str:
    """Base URL of the test Prometheus, ``http://127.0.0.1:9190`` (MLREC_TEST_PROMETHEUS_URL)."""
    return service_env("MLREC_TEST_PROMETHEUS_URL")


@pytest.fixture(scope="session")
def prometheus_target() -> tuple[str, int]:
    """``(host, port)`` that the test Prometheus scrapes every second as job ``mlrec-test``.

    A test serves metrics there itself (MLREC_TEST_PROMETHEUS_TARGET).
    """
    host, _, port = service_env("MLREC_TEST_PROMETHEUS_TARGET").rpartition(":")
    return host, int(port)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name unique to this test run, safe as a table, key or topic name: ``t_<test>_<hex>``."""
    base = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    return f"t_{base}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fresh_database_url(database_url: str, unique_name: str) -> Iterator[str]:
    """URL of a new, empty PostgreSQL database for this test alone, dropped afterwards.

    For tests that run migrations or drop tables: they cannot disturb each other
    or other tests sharing ``database_url``. (The ``mlrec`` role has CREATEDB.)
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")  # CREATE DATABASE refuses a tx
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{unique_name}"'))
        yield url.set(database=unique_name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{unique_name}" WITH (FORCE)'))
    finally:
        admin.dispose()
