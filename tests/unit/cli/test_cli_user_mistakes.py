"""Mistakes a user makes on the command line end in one clear line, not a wrong result."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mlrec.cli import app
from tests.unit.cli.running import invoke, runner
from tests.unit.cli.test_cli_errors import run_failing


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default outputs (model/, train.csv, recs.csv) go to the test's directory."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def train_csv(tmp_path: Path) -> Path:
    """Users u0..u29, each with 6 of items i0..i19."""
    path = tmp_path / "train.csv"
    lines = ["user_id,item_id"] + [f"u{u},i{(u * 3 + j) % 20}" for u in range(30) for j in range(6)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def model_dir(tmp_path: Path, train_csv: Path) -> Path:
    output = tmp_path / "m"
    invoke(
        "train", "--interactions", str(train_csv), "--algorithm", "ease", "--output", str(output)
    )
    return output


def test_evaluate_on_the_training_file_warns_that_no_test_event_can_be_hit(
    model_dir: Path, train_csv: Path
) -> None:
    result = runner.invoke(app, ["evaluate", "--model", str(model_dir), "--test", str(train_csv)])
    assert result.exit_code == 0, result.output
    err = " ".join(result.stderr.split())
    assert "warning: all 180 of the 180 test events" in err
    assert "is --test the training file?" in err


def test_evaluate_warns_of_test_events_that_are_in_the_training_data(
    tmp_path: Path, model_dir: Path
) -> None:
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("u0,i0\nu1,i19\n")  # u0 had i0 in training; u1 never had i19
    result = runner.invoke(app, ["evaluate", "--model", str(model_dir), "--test", str(test_csv)])
    assert result.exit_code == 0, result.output
    err = " ".join(result.stderr.split())
    assert "warning: 1 of the 2 test events of evaluated users are in the model's training" in err
    assert "training file" not in err


def test_split_into_a_missing_directory_fails_before_writing_either_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_out = tmp_path / "train.csv"
    test_out = tmp_path / "missing" / "test.csv"
    argv = ["split", "--train-output", str(train_out), "--test-output", str(test_out)]
    err = run_failing(argv, capsys)
    assert "--test-output" in err and str(tmp_path / "missing") in err
    assert not train_out.exists()


def test_split_that_leaves_no_test_events_fails_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --ratio 0.0001 of the demo's users' few events rounds to nothing held out
    train_out, test_out = tmp_path / "a.csv", tmp_path / "b.csv"
    argv = ["split", "--ratio", "0.0001", "--train-output", str(train_out)]
    err = run_failing([*argv, "--test-output", str(test_out)], capsys)
    assert "leaves no test events" in err
    assert not train_out.exists() and not test_out.exists()


def test_split_to_a_directory_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["split", "--train-output", str(tmp_path), "--test-output", str(tmp_path / "t.csv")]
    err = run_failing(argv, capsys)
    assert "--train-output" in err and "is a directory" in err


def test_output_paths_expand_a_tilde_as_input_paths_do(
    tmp_path: Path, train_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    invoke("train", f"--interactions={train_csv}", "--algorithm", "ease", "--output=~/m")
    invoke("recommend", "--model=~/m", "--output=~/recs.csv")
    invoke("split", "--train-output=~/a.csv", "--test-output=~/b.csv")
    assert (home / "m" / "manifest.json").is_file()
    assert (home / "recs.csv").is_file()
    assert (home / "a.csv").is_file() and (home / "b.csv").is_file()
    assert not (tmp_path / "~").exists()


def test_recommend_reports_the_rows_it_wrote_not_users_times_k(
    tmp_path: Path, model_dir: Path
) -> None:
    recs = tmp_path / "recs.csv"
    # 20 items, 6 seen per user: 14 are left, fewer than --k 50
    out = invoke("recommend", "--model", str(model_dir), "--k", "50", "--output", str(recs))
    with recs.open() as handle:
        rows = len(list(csv.reader(handle))) - 1
    assert rows == 30 * 14
    text = " ".join(out.split())
    assert f"{rows} recommendations for 30 users" in text and "fewer than 50" in text
    assert "30 users x 50" not in text


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--dataset", "demo", "--source", "rows.csv"], "not --dataset, --source"),
        (["--source", "rows.csv", "--sql-table", "t"], "not --source, --sql-table"),
        (["--dataset", "demo", "--sql-url", "sqlite:///x.db"], "give --sql-table too"),
        (["--source", "rows.csv", "--download"], "--download"),
    ],
)
def test_materialize_refuses_options_it_would_ignore(
    options: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = run_failing(["features", "materialize", "user_stats", *options], capsys)
    assert problem in err


def test_features_apply_of_a_file_that_defines_nothing_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    definitions = tmp_path / "views.yaml"
    definitions.write_text("views:\n  - name: x\n")  # not the feature_views key
    err = run_failing(["features", "apply", str(definitions)], capsys)
    assert str(definitions) in err and "feature_views" in err


def test_features_apply_of_entities_only_says_so(tmp_path: Path) -> None:
    definitions = tmp_path / "entities.yaml"
    definitions.write_text("entities:\n  - name: shop\n")
    out = " ".join(invoke("features", "apply", str(definitions)).split())
    assert "entities applied: shop" in out and "no feature views" in out


def test_train_refuses_a_param_given_twice(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--algorithm", "ease", "--param", "l2=10", "--param", "l2=20"]
    err = run_failing(argv, capsys)
    assert "--param l2 is given more than once" in err


def test_train_checks_params_before_loading_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--interactions", str(tmp_path / "absent.csv"), "--algorithm", "ease"]
    err = run_failing([*argv, "--param", "nosuch=1"], capsys)
    assert "unknown parameter 'nosuch'" in err
