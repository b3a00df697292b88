"""`mlrec split` writes train/test CSVs that `mlrec train` and `mlrec evaluate` read back."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from mlrec.cli import main
from tests.unit.cli.running import invoke as run

HEADER = ["user_id", "item_id", "weight", "timestamp"]


@pytest.fixture
def events(tmp_path: Path) -> Path:
    """20 users with 8 events each; string ids, fractional weights, distinct timestamps."""
    path = tmp_path / "events.csv"
    rows = ["user_id,item_id,rating,timestamp"]
    for u in range(20):
        for j in range(8):
            rows.append(
                f"user-{u:02d},item {(u * 5 + j) % 30:03d},{0.5 + j % 10 / 2},{1000 * u + j}"
            )
    path.write_text("\n".join(rows) + "\n")
    return path


def invoke(*args: str) -> str:
    """``mlrec args``'s output with its line wrapping undone."""
    return " ".join(run(*args).split())


def read(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == HEADER
    return rows[1:]


def split(events: Path, tmp_path: Path, *options: str) -> tuple[list[list[str]], list[list[str]]]:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    invoke(
        "split",
        "--interactions",
        str(events),
        "--format",
        "csv",
        *options,
        "--train-output",
        str(train),
        "--test-output",
        str(test),
    )
    return read(train), read(test)


def original(events: Path) -> Counter[tuple[str, ...]]:
    with events.open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return Counter((u, i, f"{float(w):g}", t) for u, i, w, t in rows)


def as_events(rows: list[list[str]]) -> Counter[tuple[str, ...]]:
    return Counter((u, i, f"{float(w):g}", t) for u, i, w, t in rows)


def test_random_split_keeps_ids_weights_times_and_is_reproducible(
    events: Path, tmp_path: Path
) -> None:
    train, test = split(events, tmp_path, "--method", "random", "--ratio", "0.25", "--seed", "7")
    assert as_events(train) + as_events(test) == original(events)
    assert {row[0] for row in test} <= {row[0] for row in train}
    assert Counter(row[0] for row in test) == {f"user-{u:02d}": 2 for u in range(20)}
    assert "item 005" in {row[1] for row in train + test}  # string ids, spaces kept
    again = split(events, tmp_path, "--method", "random", "--ratio", "0.25", "--seed", "7")
    assert again == (train, test)
    other = split(events, tmp_path, "--method", "random", "--ratio", "0.25", "--seed", "8")
    assert other != (train, test)


def test_leave_last_out_holds_out_each_users_latest(events: Path, tmp_path: Path) -> None:
    train, test = split(events, tmp_path, "--method", "leave-last-out", "--last", "2")
    assert as_events(train) + as_events(test) == original(events)
    latest = {(f"user-{u:02d}", str(1000 * u + j)) for u in range(20) for j in (6, 7)}
    assert {(row[0], row[3]) for row in test} == latest


def test_time_split_is_one_cut_in_time(events: Path, tmp_path: Path) -> None:
    train, test = split(events, tmp_path, "--method", "time", "--ratio", "0.25")
    assert as_events(train) + as_events(test) == original(events)
    assert len(test) == 40
    assert max(int(row[3]) for row in train) < min(int(row[3]) for row in test)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--method", "leave-last-out", "--ratio", "0.3"], "--ratio does not apply"),
        (["--method", "time", "--seed", "1"], "--seed applies to --method random only"),
        (["--method", "random", "--last", "2"], "--last applies to --method leave-last-out"),
        (["--ratio", "1.5"], "--ratio must be between 0 and 1"),
    ],
)
def test_split_rejects_options_that_do_not_apply(
    options: list[str],
    problem: str,
    events: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "split",
                "--interactions",
                str(events),
                *options,
                "--train-output",
                str(tmp_path / "a.csv"),
            ]
        )
    assert exit_info.value.code == 2
    assert problem in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "a.csv").exists()


def test_split_refuses_to_overwrite_its_input(
    events: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = events.read_text()
    with pytest.raises(SystemExit):
        main(["split", "--interactions", str(events), "--train-output", str(events)])
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert events.read_text() == before


def test_readme_sequence_split_train_evaluate_on_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = invoke(
        "split", "--dataset", "demo", "--method", "random", "--ratio", "0.25", "--seed", "42"
    )
    assert "train: " in out and "-> train.csv" in out and "-> test.csv" in out
    out = invoke(
        "train",
        "--interactions",
        "train.csv",
        "--format",
        "csv",
        "--algorithm",
        "ease",
        "--output",
        "model",
    )
    assert "on train: 1000 users" in out
    invoke("recommend", "--model", "model", "--k", "10", "--output", "recs.csv")
    out = invoke(
        "evaluate", "--model", "model", "--test", "test.csv", "--format", "csv", "--k", "10"
    )
    assert "NDCG@10" in out
    assert "evaluated 1000 of 1000 test users; skipped 0 unknown to the model" in out


def write_ml100k(folder: Path) -> Path:
    """A small ml-100k folder: u.data (8 events per user) and u.item (titles)."""
    folder.mkdir(parents=True)
    rows = [
        f"{u}\t{(u * 3 + j) % 12 + 1}\t{j % 5 + 1}\t{880000000 + 10 * u + j}"
        for u in range(1, 11)
        for j in range(8)
    ]
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    flags = "|".join(["0"] * 19)
    items = [f"{i}|Movie {i} (1995)|01-Jan-1995||http://x.org/{i}|{flags}" for i in range(1, 13)]
    (folder / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1")
    return folder


def refused_split(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["split", *argv])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("overwritten", ["u.data", "u.item", "u.genre"])
def test_split_refuses_to_overwrite_a_file_of_an_input_directory(
    overwritten: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_ml100k(tmp_path / "ml")
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    err = refused_split(
        [
            "--interactions",
            str(folder),
            "--format",
            "movielens-100k",
            "--train-output",
            str(tmp_path / "train.csv"),
            "--test-output",
            str(folder / overwritten),
        ],
        capsys,
    )
    assert f"refusing to overwrite the input {folder / overwritten}" in err
    assert "(--test-output)" in err
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert not (tmp_path / "train.csv").exists()


def test_split_refuses_to_overwrite_the_side_file_beside_an_input_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "lastfm"
    folder.mkdir()
    ratings = folder / "plays.dat"
    ratings.write_text("userID\tartistID\tweight\n1\t10\t5\n1\t11\t3\n2\t10\t7\n2\t12\t1\n")
    (folder / "artists.dat").write_text("id\tname\turl\tpictureURL\n10\tA\tu\tp\n")
    err = refused_split(
        [
            "--interactions",
            str(ratings),
            "--format",
            "lastfm",
            "--train-output",
            str(folder / "artists.dat"),
            "--test-output",
            str(tmp_path / "test.csv"),
        ],
        capsys,
    )
    assert "refusing to overwrite the input" in err and "artists.dat" in err
    assert (folder / "artists.dat").read_text().startswith("id\tname")


def test_split_refuses_to_overwrite_a_named_datasets_files_even_through_a_link(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_ml100k(data_dir / "ml-100k")
    before = (folder / "u.data").read_bytes()
    link = tmp_path / "link"
    link.symlink_to(folder, target_is_directory=True)
    hard = tmp_path / "hard.data"
    hard.hardlink_to(folder / "u.data")
    for option, output in [
        ("--train-output", folder / "u.data"),
        ("--test-output", link / "u.item"),  # the same file through a symlinked folder
        ("--train-output", hard),  # a hard link to u.data
    ]:
        other = "--test-output" if option == "--train-output" else "--train-output"
        argv = ["--dataset", "ml-100k", option, str(output), other, str(tmp_path / "x.csv")]
        err = refused_split(argv, capsys)
        assert "refusing to overwrite the input" in err and f"({option})" in err
    assert f"the input {folder.resolve() / 'u.data'}" in err
    assert (folder / "u.data").read_bytes() == before
    assert not (tmp_path / "x.csv").exists()


def test_split_of_an_input_directory_may_write_beside_its_files(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml")
    out = invoke(
        "split",
        "--interactions",
        str(folder),
        "--format",
        "movielens-100k",
        "--train-output",
        str(folder / "train.csv"),
        "--test-output",
        str(folder / "test.csv"),
    )
    assert "split ml-100k" in out
    assert len(read(folder / "train.csv")) + len(read(folder / "test.csv")) == 80
