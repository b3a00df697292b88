"""``mlrec serve stream`` creates ``mlrec.interactions`` with the configured partitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrec.backends import factory
from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.cli import app, main
from tests.unit.cli.running import runner


class ReachedEventLogError(Exception):
    """Raised by the fake event log: the command got as far as opening it."""


@pytest.fixture
def opened_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The partitions each ``open_event_log`` call asked for (the command stops there)."""
    monkeypatch.setenv("MLREC_DATA_DIR", str(tmp_path / "data"))
    for name in ("MLREC_KAFKA_PARTITIONS", "MLREC_KAFKA_BOOTSTRAP_SERVERS", "MLREC_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    calls: list[int] = []

    def open_event_log(_bootstrap: str | None, _path: Path, partitions: int = 6) -> None:
        calls.append(partitions)
        raise ReachedEventLogError

    monkeypatch.setattr(factory, "open_event_log", open_event_log)
    monkeypatch.setattr(factory, "open_online_store", lambda _url: InMemoryOnlineStore())
    return calls


def serve_stream(*args: str) -> None:
    result = runner.invoke(app, ["serve", "stream", *args])
    assert isinstance(result.exception, ReachedEventLogError), result.output


def test_serve_stream_takes_its_partitions_from_mlrec_kafka_partitions(
    opened_with: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (audit defect 7): the option's literal default of 6 won over the
    setting, so the processor could create the topic with 6 partitions."""
    monkeypatch.setenv("MLREC_KAFKA_PARTITIONS", "2")
    serve_stream()
    assert opened_with == [2]


def test_serve_stream_partitions_option_overrides_the_setting(
    opened_with: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_KAFKA_PARTITIONS", "2")
    serve_stream("--partitions", "4")
    assert opened_with == [4]


def test_serve_stream_creates_six_partitions_when_nothing_is_configured(
    opened_with: list[int],
) -> None:
    serve_stream()
    assert opened_with == [6]


def test_serve_stream_refuses_an_invalid_mlrec_kafka_partitions(
    opened_with: list[int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLREC_KAFKA_PARTITIONS", "0")
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "stream"])
    assert exit_info.value.code == 2
    assert "MLREC_KAFKA_PARTITIONS" in capsys.readouterr().err
    assert opened_with == []


def test_serve_stream_refuses_a_partitions_option_below_one(opened_with: list[int]) -> None:
    result = runner.invoke(app, ["serve", "stream", "--partitions", "0"])
    assert result.exit_code == 2
    assert opened_with == []
