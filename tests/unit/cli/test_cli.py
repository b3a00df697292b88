"""The `mlrec` command as a user runs it (in-process through typer's runner)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mlrec.cli import app, main
from tests.unit.cli.running import invoke, runner


def test_train_recommend_evaluate_round_trip(tmp_path: Path) -> None:
    train_csv = tmp_path / "train.csv"
    test_csv = tmp_path / "test.csv"
    rows = [(f"u{u}", f"i{(u * 7 + j) % 40}") for u in range(60) for j in range(8)]
    with train_csv.open("w") as handle:
        handle.write("user_id,item_id\n")
        for user, item in rows:
            handle.write(f"{user},{item}\n")
    with test_csv.open("w") as handle:
        handle.write("user_id,item_id\n")
        for u in range(60):
            handle.write(f"u{u},i{(u * 7 + 8) % 40}\n")
    out = invoke(
        "train",
        "--interactions",
        str(train_csv),
        "--format",
        "csv",
        "--algorithm",
        "ease",
        "--param",
        "l2=10",
        "--output",
        str(tmp_path / "m"),
    )
    assert "trained in" in out
    invoke(
        "recommend",
        "--model",
        str(tmp_path / "m"),
        "--k",
        "5",
        "--output",
        str(tmp_path / "recs.csv"),
    )
    with (tmp_path / "recs.csv").open() as handle:
        recs = list(csv.DictReader(handle))
    assert len(recs) == 60 * 5
    assert set(recs[0]) == {"user_id", "item_id", "rank", "score"}
    seen = set(rows)
    assert not any((r["user_id"], r["item_id"]) in seen for r in recs)
    out = invoke("evaluate", "--model", str(tmp_path / "m"), "--test", str(test_csv), "--k", "5")
    assert "NDCG@5" in out


def test_register_list_show_promote(tmp_path: Path) -> None:
    invoke(
        "train",
        "--dataset",
        "demo",
        "--algorithm",
        "most_popular",
        "--output",
        str(tmp_path / "m"),
        "--register",
        "movies",
    )
    assert "movies:1" in invoke("models", "list")
    assert "staging" in invoke("models", "show", "movies:1")
    assert "production" in invoke("models", "promote", "movies:1")
    assert "production" in invoke("models", "show", "movies")


def test_bad_input_file_is_one_line_error_with_line_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,weight\nu1,i1,1\nu2,i2,heavy\n")
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train",
                "--interactions",
                str(bad),
                "--format",
                "csv",
                "--output",
                str(tmp_path / "m"),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "Traceback" not in err


def test_unknown_algorithm_and_bad_param_are_rejected(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--algorithm", "magic", "--output", str(tmp_path)])
    assert result.exit_code == 2 and "unknown algorithm" in result.output
    with pytest.raises(SystemExit):
        main(["train", "--algorithm", "ease", "--param", "l2=lots", "--output", str(tmp_path)])


def test_features_apply_materialize_get_stats() -> None:
    assert "user_stats: v1 created" in invoke("features", "apply")
    assert "unchanged" in invoke("features", "apply")
    out = invoke("features", "materialize", "user_stats", "--dataset", "demo")
    assert "wrote 1000 entities" in out
    # the demo log ends on 2024-01-01: older than the 7-day TTL, so stored but stale
    assert "1000 entities have values older than the view's TTL" in out
    got = invoke("features", "get", "user_stats", "u0001")
    assert '"stale": [' in got and '"user_stats:interaction_count"' in got
    assert "user_stats" in invoke("features", "stats")
