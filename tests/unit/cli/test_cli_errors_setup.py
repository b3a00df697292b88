"""Commands fail on a bad database URL, models directory or flag value with one line,
and before they train (not after minutes of work)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrec.cli import main
from tests.unit.cli.test_cli_errors import run_failing


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///"])
def test_an_in_memory_database_url_is_one_line_not_a_missing_table(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLREC_DATABASE_URL", url)
    err = run_failing(["models", "list"], capsys)
    assert "MLREC_DATABASE_URL" in err and "in-memory" in err


def test_a_database_url_with_a_port_that_is_not_a_number_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLREC_DATABASE_URL", "postgresql://u:s3cret@db:abc/x")
    err = run_failing(["models", "list"], capsys)
    assert "MLREC_DATABASE_URL" in err and "'db:abc'" in err and "s3cret" not in err


def test_a_sql_url_option_with_a_port_that_is_not_a_number_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["features", "apply"])
    capsys.readouterr()
    argv = ["features", "materialize", "user_stats", "--sql-table", "t"]
    err = run_failing([*argv, "--sql-url", "postgresql://u:s3cret@db:abc/x"], capsys)
    assert "'db:abc'" in err and "s3cret" not in err


def failing_output(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """``mlrec argv``'s whole output (stdout, stderr); it must exit 2 with one error line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    assert exit_info.value.code == 2, captured.err
    assert "Traceback" not in captured.err
    assert [line for line in captured.err.splitlines() if "error:" in line], captured.err
    return captured.out, captured.err


@pytest.fixture
def models_dir_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setenv("MLREC_MODELS_DIR", str(not_a_dir))
    return not_a_dir


def test_train_register_with_an_unusable_models_dir_fails_before_training(
    models_dir_is_a_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--dataset", "demo", "--algorithm", "most_popular", "--register", "m"]
    out, err = failing_output([*argv, "--output", str(tmp_path / "m")], capsys)
    assert str(models_dir_is_a_file) in err and "MLREC_MODELS_DIR" in err
    assert "training" not in out and "trained" not in out


def test_run_with_an_unusable_models_dir_fails_before_training(
    models_dir_is_a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = failing_output(["run"], capsys)
    assert str(models_dir_is_a_file) in err
    assert "fit " not in err and "dataset demo" not in out  # nothing was trained


def test_split_refuses_a_negative_seed_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["split", "--dataset", "demo", "--seed", "-1"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--train-output", str(tmp_path / "a"), "--test-output", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "--seed" in err and "Traceback" not in err
