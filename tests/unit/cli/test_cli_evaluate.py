"""`mlrec evaluate` says how many test users it scored and how many it had to skip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlrec.cli import app, main
from tests.unit.cli.running import runner


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """EASE trained on users u0..u59, each with 8 of items i0..i39."""
    train_csv = tmp_path / "train.csv"
    lines = ["user_id,item_id"]
    lines += [f"u{u},i{(u * 7 + j) % 40}" for u in range(60) for j in range(8)]
    train_csv.write_text("\n".join(lines) + "\n")
    argv = ["train", "--interactions", str(train_csv), "--format", "csv", "--algorithm", "ease"]
    result = runner.invoke(app, [*argv, "--output", str(tmp_path / "m")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return tmp_path / "m"


def test_evaluate_reports_evaluated_and_skipped_users(tmp_path: Path, model_dir: Path) -> None:
    test_csv = tmp_path / "test.csv"
    lines = ["user_id,item_id"] + [f"u{u},i{(u * 7 + 8) % 40}" for u in range(60)]
    lines += ["stranger1,i1", "stranger1,i2", "stranger2,i3"]  # users the model never saw
    lines += ["u0,brand-new-item"]  # a known user, an item the model never saw
    test_csv.write_text("\n".join(lines) + "\n")
    result = runner.invoke(
        app, ["evaluate", "--model", str(model_dir), "--test", str(test_csv), "--k", "5"]
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "NDCG@5" in out
    assert "evaluated 60 of 62 test users; skipped 2 unknown to the model (3 events)" in out
    assert "note: 1 test events of evaluated users are items the model never saw" in out


def test_evaluate_with_every_user_known_skips_none(tmp_path: Path, model_dir: Path) -> None:
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("u1,i9\nu2,i16\n")
    result = runner.invoke(app, ["evaluate", "--model", str(model_dir), "--test", str(test_csv)])
    assert result.exit_code == 0, result.output
    assert re.search(
        r"evaluated 2 of 2 test users; skipped 0 unknown to the model\s*$", result.output
    )


def test_evaluate_fails_when_no_test_user_is_known(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("user_id,item_id\nx1,i1\nx2,i2\nx3,i1\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", str(model_dir), "--test", str(test_csv)])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "none of the 3 users" in captured.err and "known to the model" in captured.err
    assert "NDCG" not in captured.out  # no table of zeros
