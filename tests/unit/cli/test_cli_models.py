"""`mlrec train --register`, `mlrec run --name` and `mlrec models ...` with awkward names
and references: refused in one line, or printed literally; never a traceback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlrec.backends.factory import open_model_registry
from mlrec.backends.sql.registry import SqlModelRegistry
from mlrec.backends.sql.schema import model_versions
from mlrec.cli import main
from tests.unit.cli.running import invoke


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``mlrec argv`` through ``main``: it must exit 2 with one error line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def store_legacy_version(data_dir: Path, name: str, dataset: str) -> None:
    """A row as an mlrec without the name rule could have stored it."""
    registry = open_model_registry(f"sqlite:///{data_dir / 'mlrec.db'}")
    assert isinstance(registry, SqlModelRegistry)
    with registry.engine.begin() as conn:
        conn.execute(
            model_versions.insert().values(
                name=name,
                version=1,
                algorithm="most_popular",
                artifact_sha256="c" * 64,
                artifact_path="c" * 64,
                params={"note": "[red]"},
                dataset=dataset,
                metrics={"ndcg": 0.25},
                stage="staging",
                created_at=datetime.now(UTC),
            )
        )
    registry.engine.dispose()


@pytest.mark.parametrize("name", ["x[/]", "a:b", "has space", "", "-x"])
def test_train_register_refuses_a_bad_name_before_training(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--dataset", "demo", "--algorithm", "most_popular"]
    line = error_of([*argv, "--register", name, "--output", str(tmp_path / "m")], capsys)
    assert f"--register: bad model name {name!r}" in line or "empty name" in line
    assert "letters, digits, '.', '_' and '-'" in line
    assert not (tmp_path / "m").exists()  # refused before any work
    assert "movies" not in invoke("models", "list")


def test_run_name_refuses_a_bad_name_before_training(capsys: pytest.CaptureFixture[str]) -> None:
    line = error_of(["run", "--name", "a:b"], capsys)
    assert "--name: bad model name 'a:b'" in line


def test_register_with_a_good_name_prints_its_ref_literally(tmp_path: Path) -> None:
    out = invoke(
        "train",
        "--dataset",
        "demo",
        "--algorithm",
        "most_popular",
        "--register",
        "movies.v2",
        "--output",
        str(tmp_path / "m"),
    )
    assert "registered movies.v2:1 (staging)" in out


@pytest.mark.parametrize(("name", "dataset"), [("x[/]", "[bold]data"), ("a:b", "d:b:")])
def test_models_list_and_show_print_stored_names_literally(
    name: str, dataset: str, data_dir: Path
) -> None:
    store_legacy_version(data_dir, name, dataset)
    listed = invoke("models", "list")
    assert f"{name}:1" in listed and dataset in listed
    shown = invoke("models", "show", f"{name}:1")
    assert f"{name}:1" in shown and dataset in shown and "'note': '[red]'" in shown
    assert "now staging" in invoke("models", "promote", f"{name}:1", "--stage", "staging")


def train_and_register(tmp_path: Path) -> None:
    invoke(
        "train",
        "--dataset",
        "demo",
        "--algorithm",
        "most_popular",
        "--register",
        "movies",
        "--output",
        str(tmp_path / "m"),
    )


@pytest.mark.parametrize("version", ["99999999999999999999", "3000000000", "0"])
def test_models_show_of_a_version_out_of_range_is_the_error_promote_gives(
    version: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_and_register(tmp_path)
    capsys.readouterr()
    ref = f"movies:{version}"
    shown = error_of(["models", "show", ref], capsys)
    assert shown == f"error: no model version 'movies:{int(version)}' in the registry"
    assert error_of(["models", "promote", ref], capsys) == shown


@pytest.mark.parametrize("ref", ["movies:x", "movies:", "movies:١"])
def test_models_show_of_a_malformed_ref_is_one_line(
    ref: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_and_register(tmp_path)
    capsys.readouterr()
    assert "bad model reference" in error_of(["models", "show", ref], capsys)
