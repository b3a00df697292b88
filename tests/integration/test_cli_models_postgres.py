"""`mlrec models` against the real PostgreSQL: bad references are one line, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlrec.cli import app, main

pytestmark = pytest.mark.integration

TRAIN = ["train", "--dataset", "demo", "--algorithm", "most_popular"]


@pytest.fixture(autouse=True)
def postgres_registry(
    fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("MLREC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MLREC_MODELS_DIR", raising=False)
    monkeypatch.delenv("MLREC_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(
        app,
        [*TRAIN, "--register", "movies", "--output", str(tmp_path / "m")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0 and "registered movies:1" in result.output, result.output


def error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "DataError" not in err, err
    return err.strip()


@pytest.mark.parametrize("version", ["2147483648", "3000000000", "99999999999999999999"])
def test_models_show_of_a_version_beyond_integer_is_the_error_promote_gives(
    version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = error_line(["models", "show", f"movies:{version}"], capsys)
    assert shown == f"error: no model version 'movies:{version}' in the registry"
    assert error_line(["models", "promote", f"movies:{version}"], capsys) == shown


def test_register_of_a_bad_name_is_refused_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = error_line(
        [*TRAIN, "--register", "a:b", "--output", str(tmp_path / "m2")],
        capsys,
    )
    assert "bad model name 'a:b'" in line
    listed = CliRunner().invoke(app, ["models", "list"], catch_exceptions=False).output
    assert "movies:1" in listed and "a:b" not in listed
