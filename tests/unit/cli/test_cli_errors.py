"""Failures a user can cause from the shell end in one line naming the cause, not a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mlrec.backends.sql.migrate import upgrade_database
from mlrec.cli import main
from mlrec.core.errors import BackendUnavailableError
from mlrec.core.interactions import Interactions
from mlrec.models import create_model
from mlrec.models.artifacts import Artifact, read_artifact, write_artifact

# Port 1 on loopback: refused at once, no network involved.
UNREACHABLE_POSTGRES = "postgresql://nobody:s3cret@127.0.0.1:1/x"


def run_failing(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``mlrec argv`` through ``main``; it must exit non-zero with one error line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    # progress bars may come first; the error is one line, the last one
    assert [line for line in lines if "error:" in line] == lines[-1:], err
    assert lines[-1].startswith("error:"), err
    return lines[-1]


def test_upgrade_database_raises_backend_unavailable_for_refused_connection() -> None:
    with pytest.raises(BackendUnavailableError) as info:
        upgrade_database(UNREACHABLE_POSTGRES)
    message = str(info.value)
    assert "127.0.0.1" in message and "s3cret" not in message


def test_unreachable_postgres_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLREC_DATABASE_URL", UNREACHABLE_POSTGRES)
    err = run_failing(["models", "list"], capsys)
    assert "cannot connect to the database" in err
    assert "127.0.0.1" in err and "s3cret" not in err


def test_a_database_lost_after_the_start_check_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the database answered when the command opened the registry (its schema check is
    # skipped here), then went away while the model trained: was a traceback
    monkeypatch.setattr("mlrec.backends.sql.migrate.upgrade_database", lambda _url: None)
    monkeypatch.setenv("MLREC_DATABASE_URL", UNREACHABLE_POSTGRES)
    argv = ["train", "--dataset", "demo", "--algorithm", "most_popular", "--register", "m"]
    err = run_failing([*argv, "--output", str(tmp_path / "m")], capsys)
    assert "cannot connect to the database" in err
    assert "127.0.0.1" in err and "s3cret" not in err


def test_a_database_migrated_by_a_newer_mlrec_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    upgrade_database(url)
    conn = sqlite3.connect(tmp_path / "newer.db")
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_future'")
    conn.close()
    monkeypatch.setenv("MLREC_DATABASE_URL", url)
    err = run_failing(["models", "list"], capsys)
    assert "'0099_future'" in err and "newer mlrec" in err


def test_unopenable_sqlite_file_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # /proc exists, but no regular file can be created in it (not even by root)
    monkeypatch.setenv("MLREC_DATABASE_URL", "sqlite:////proc/mlrec-test.db")
    err = run_failing(["models", "list"], capsys)
    assert "/proc/mlrec-test.db" in err


def test_data_dir_that_cannot_be_created_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLREC_DATA_DIR", "/proc/nonexist")
    err = run_failing(["models", "list"], capsys)
    assert "/proc/nonexist" in err


def test_recommend_to_missing_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as trained:
        main(
            [
                "train",
                "--dataset",
                "demo",
                "--algorithm",
                "most_popular",
                "--output",
                str(tmp_path / "m"),
            ]
        )
    assert trained.value.code == 0
    capsys.readouterr()
    err = run_failing(
        ["recommend", "--model", str(tmp_path / "m"), "--output", "/nonexistent/x.csv"], capsys
    )
    assert "/nonexistent/x.csv" in err


def test_train_output_that_cannot_be_created_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = run_failing(
        ["train", "--dataset", "demo", "--algorithm", "most_popular", "--output", "/proc/x"],
        capsys,
    )
    assert "/proc/x" in err


@pytest.mark.parametrize("command", ["recommend", "evaluate"])
def test_a_model_of_another_layout_is_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = Interactions.from_arrays(["u1", "u1", "u2"], ["a", "b", "b"])
    model = create_model("most_popular").fit(data)
    model.save(tmp_path / "m")
    artifact = read_artifact(tmp_path / "m")
    artifact.manifest.pop("sha256")
    artifact.manifest["users"] = 7  # checksums recomputed below: only the layout is odd
    write_artifact(tmp_path / "odd", Artifact(artifact.manifest, artifact.arrays))
    (tmp_path / "test.csv").write_text("u1,b\n")
    argv = {
        "recommend": ["--output", str(tmp_path / "recs.csv")],
        "evaluate": ["--test", str(tmp_path / "test.csv")],
    }[command]
    err = run_failing([command, "--model", str(tmp_path / "odd"), *argv], capsys)
    assert "saved in a layout this mlrec cannot read" in err
