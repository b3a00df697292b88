"""The API sets up its topics and metadata schema without letting an outage block start-up."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from mlrec.backends.factory import EventLog, open_event_log
from mlrec.core.errors import BackendError, BackendUnavailableError
from mlrec.services.api.startup import BackgroundSetup, schema_setup, topic_setup
from tests.integration.serving import closed_port
from tests.polling import wait_for


class FlakyLog(EventLog):
    """The embedded log, unreachable for its first ``failures`` attempts."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(None, path, 2)
        self.failures = failures
        self.attempts = 0

    def ensure_topics(
        self, topics: Mapping[str, int] | None = None, timeout_s: float = 30.0
    ) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise BackendUnavailableError("broker unreachable")
        super().ensure_topics(topics, timeout_s)


def test_topics_are_created_at_once_when_the_log_is_reachable(tmp_path: Path) -> None:
    setup = topic_setup(open_event_log(None, tmp_path / "events.db"))
    setup.start()
    assert setup.done and setup.error is None


def test_an_unreachable_log_is_retried_in_the_background_until_it_answers(
    tmp_path: Path,
) -> None:
    log = FlakyLog(tmp_path / "events.db", failures=2)
    setup = topic_setup(log, max_delay_s=0.01)
    setup.start()  # returns after the first failure
    assert not setup.done and setup.error is not None and "unreachable" in setup.error

    deadline = time.monotonic() + 10
    while not setup.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert setup.done and log.attempts == 3


def test_start_gives_up_quickly_on_an_unreachable_kafka(tmp_path: Path) -> None:
    port = closed_port()
    setup = topic_setup(open_event_log(f"127.0.0.1:{port}", tmp_path / "x.db"), timeout_s=0.5)
    setup.start()
    setup.stop()
    assert not setup.done and setup.error is not None and "Kafka" in setup.error


def test_an_unreachable_metadata_database_is_reported_and_retried() -> None:
    setup = schema_setup(f"postgresql://mlrec:s3cret@127.0.0.1:{closed_port()}/mlrec")
    setup.start()  # returns after the first failure
    setup.stop()
    assert not setup.done and setup.error is not None
    assert "cannot connect to the database" in setup.error and "s3cret" not in setup.error


def test_the_metadata_schema_is_created_at_once_when_the_database_answers(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    setup = schema_setup(url)
    setup.start()
    assert setup.done
    from sqlalchemy import create_engine, inspect

    assert "alembic_version" in inspect(create_engine(url)).get_table_names()


def test_an_error_that_is_not_an_outage_fails_start_at_once() -> None:
    def refused() -> None:
        raise BackendError("permission denied for schema public")

    setup = BackgroundSetup("the schema", refused, BackendUnavailableError)
    with pytest.raises(BackendError, match="permission denied"):
        setup.start()


def test_a_retried_step_that_then_fails_for_good_stops_retrying() -> None:
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise BackendUnavailableError("unreachable")
        raise BackendError("refused for good")

    setup = BackgroundSetup("the schema", flaky, BackendUnavailableError, max_delay_s=0.01)
    setup.start()
    wait_for(lambda: len(attempts) >= 2, 10, "the second attempt")
    time.sleep(0.3)  # it would have tried again many times by now had it gone on
    assert len(attempts) == 2 and not setup.done
