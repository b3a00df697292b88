"""Server commands started with an address they cannot listen on exit at once, with one
line naming it, before the app starts (uvicorn loaded the model first, then logged a
bind error and exited 3; a port over 65535 was even bound modulo 65536)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from mlrec.cli import main
from mlrec.services.api.config import get_settings
from tests.unit.cli.test_cli_errors import run_failing


@pytest.fixture(autouse=True)
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """``uvicorn.run`` records its arguments instead of serving; settings are read afresh."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_args, **kwargs: calls.append(kwargs))
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("option", "value"),
    [("--port", v) for v in ("70000", "0", "-1")] + [("--workers", v) for v in ("0", "-1", "65")],
)
def test_serve_api_refuses_a_port_or_worker_count_out_of_range(
    option: str,
    value: str,
    uvicorn_calls: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "api", option, value])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err
    assert uvicorn_calls == []


def test_serve_api_on_a_port_in_use_is_one_line_before_starting(
    busy_port: int, uvicorn_calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    err = run_failing(["serve", "api", "--host", "127.0.0.1", "--port", str(busy_port)], capsys)
    assert f"cannot listen on 127.0.0.1:{busy_port}" in err and "in use" in err
    assert uvicorn_calls == []


def test_serve_api_names_mlrec_port_when_the_setting_is_the_busy_port(
    busy_port: int,
    uvicorn_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLREC_HOST", "127.0.0.1")
    monkeypatch.setenv("MLREC_PORT", str(busy_port))
    err = run_failing(["serve", "api"], capsys)
    assert "MLREC_PORT" in err and "in use" in err
    assert uvicorn_calls == []


@pytest.mark.parametrize("host", ["bad..host", "256.1.1.1"])
def test_serve_api_on_a_host_that_does_not_resolve_is_one_line(
    host: str, uvicorn_calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    err = run_failing(["serve", "api", "--host", host], capsys)
    assert f"cannot listen on {host}:" in err and "--host" in err
    assert uvicorn_calls == []


def test_serve_api_passes_a_usable_address_and_the_workers_to_uvicorn(
    api_port: int, uvicorn_calls: list[dict[str, Any]]
) -> None:
    with pytest.raises(SystemExit) as exit_info:  # typer exits 0 after the command
        main(["serve", "api", "--host", "127.0.0.1"])
    assert exit_info.value.code in (0, None)
    [call] = uvicorn_calls
    assert (call["host"], call["port"], call["workers"]) == ("127.0.0.1", api_port, 1)


def test_up_on_a_port_in_use_fails_before_training(
    busy_port: int, uvicorn_calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    err = run_failing(["up", "--port", str(busy_port)], capsys)
    assert "in use" in err
    assert uvicorn_calls == []


def test_up_listens_on_mlrec_port_when_no_port_is_given(
    busy_port: int,
    uvicorn_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `up --port` defaulted to 8000, ignoring MLREC_PORT (which `serve api` honours)
    monkeypatch.setenv("MLREC_PORT", str(busy_port))
    err = run_failing(["up"], capsys)
    assert f":{busy_port}" in err and "MLREC_PORT" in err


def test_up_trains_and_serves_the_model_named_by_mlrec_model_name(
    tmp_path: Path,
    uvicorn_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # it trained and published "default", so an API serving "movies" had no model
    monkeypatch.setenv("MLREC_MODEL_NAME", "movies")
    monkeypatch.setenv("MLREC_WORKERS", "2")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    with pytest.raises(SystemExit) as exit_info:
        main(["up"])
    assert exit_info.value.code in (0, None)
    assert "movies:1" in capsys.readouterr().out
    [call] = uvicorn_calls
    assert call["workers"] == 2

    with pytest.raises(SystemExit):
        main(["models", "show", "movies"])
    assert "production" in capsys.readouterr().out
    models_dir = tmp_path / "data" / "models"
    assert not [p.name for p in models_dir.iterdir() if p.name.startswith(".staging")]


def test_serve_api_with_workers_removes_its_metrics_directory_when_it_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    seen: list[str] = []
    monkeypatch.setattr(
        uvicorn, "run", lambda *_a, **_k: seen.append(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    )
    with pytest.raises(SystemExit):
        main(["serve", "api", "--workers", "2"])

    [metrics_dir] = seen
    assert not Path(metrics_dir).exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_stream_refuses_a_metrics_port_out_of_range(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "stream", "--metrics-port", port])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--metrics-port" in err
    assert "Traceback" not in err


def test_serve_stream_refuses_a_blank_consumer_group(capsys: pytest.CaptureFixture[str]) -> None:
    err = run_failing(["serve", "stream", "--group", " "], capsys)
    assert "--group" in err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLREC_KAFKA_BOOTSTRAP_SERVERS", "localhost:abc"),
        ("MLREC_MODEL_NAME", "movies "),
        ("MLREC_CORS_ORIGINS", "https://a.example https://b.example"),
    ],
)
def test_serve_api_with_a_bad_setting_exits_at_once_naming_it(
    variable: str,
    value: str,
    uvicorn_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    err = run_failing(["serve", "api"], capsys)
    assert f"{variable}: " in err
    assert uvicorn_calls == []


@pytest.mark.parametrize("variable", ["MLREC_DATA_DIR", "MLREC_MODEL_CACHE_DIR"])
def test_serve_api_on_a_directory_that_is_a_file_is_one_line_before_starting(
    variable: str,
    tmp_path: Path,
    uvicorn_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # uvicorn's start-up failed with a traceback of build_state and exit status 3
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    monkeypatch.setenv(variable, str(a_file))
    err = run_failing(["serve", "api"], capsys)
    assert f"{a_file}: exists and is not a directory ({variable}=" in err
    assert uvicorn_calls == []


def test_serve_api_with_an_unreachable_database_server_warns_and_starts_degraded(
    uvicorn_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # an outage degrades the API (popular items until the database answers), as it
    # does for a worker restarted during one, rather than stopping it
    monkeypatch.setenv("MLREC_DATABASE_URL", "postgresql://nobody:s3cret@127.0.0.1:1/x")
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "api"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 0
    assert "warning: cannot connect to the database" in err and "s3cret" not in err
    assert "starting without a model" in err
    assert len(uvicorn_calls) == 1


def test_serve_api_on_a_sqlite_file_that_cannot_be_opened_is_one_line_before_starting(
    tmp_path: Path,
    uvicorn_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a_dir = tmp_path / "db"
    a_dir.mkdir()
    monkeypatch.setenv("MLREC_DATABASE_URL", f"sqlite:///{a_dir}")
    err = run_failing(["serve", "api"], capsys)
    assert "cannot connect to the database" in err
    assert uvicorn_calls == []


def test_up_with_a_model_cache_dir_that_is_a_file_fails_before_training(
    tmp_path: Path,
    uvicorn_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    monkeypatch.setenv("MLREC_MODEL_CACHE_DIR", str(a_file))
    with pytest.raises(SystemExit) as exit_info:
        main(["up"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    assert "MLREC_MODEL_CACHE_DIR" in captured.err and "Traceback" not in captured.err
    assert "dataset demo" not in captured.out and "serving on" not in captured.out
    assert uvicorn_calls == []


def test_serve_stream_with_a_redis_that_does_not_answer_exits_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # it started and idled, with nowhere to apply the events it would read
    monkeypatch.setenv("MLREC_REDIS_URL", "redis://:s3cret@127.0.0.1:1/0")  # refused at once
    err = run_failing(["serve", "stream", "--metrics-port", str(free_port())], capsys)
    assert "127.0.0.1:1/0 does not answer (MLREC_REDIS_URL)" in err and "s3cret" not in err
