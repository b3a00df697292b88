"""The MovieLens and Last.fm formats read a single ratings file as well as a folder.

``load_interactions(path, format)`` (what ``mlrec train --interactions`` calls) takes
``u.data``/``u1.base``/``u1.test``, ``ratings.csv`` or ``user_artists.dat`` directly;
titles and artist names come from the usual side file in the same folder when present.
An empty ratings file fails in the loader, naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlrec.cli import app, main
from mlrec.core import DataError, DataFormatError
from mlrec.data import (
    load_interactions,
    load_lastfm,
    load_movielens_100k,
    load_movielens_csv,
    movielens_100k_fold,
)

U_DATA = "1\t10\t5\t881250949\n2\t10\t3\t881250950\n2\t20\t4\t881250951\n"
FLAGS = "|".join(["0"] * 18 + ["1"])
U_ITEM = f"10|Ten (1995)|x||u|{FLAGS}\n20|Twenty (1996)|x||u|{FLAGS}\n"
RATINGS_CSV = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,3.5,964981247\n"
MOVIES_CSV = 'movieId,title,genres\n1,"Toy Story (1995)",Comedy\n3,Heat (1995),Action|Crime\n'
USER_ARTISTS = "userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\t11690\r\n"
ARTISTS = "id\tname\turl\tpictureURL\n51\tDuran Duran\thttp://x\thttp://y\n"


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


# --- a file instead of a folder, on small files ---------------------------------------


def test_movielens_100k_reads_a_u_data_file_with_titles_from_u_item_beside_it(
    tmp_path: Path,
) -> None:
    ratings = _write(tmp_path / "ml-100k" / "u.data", U_DATA)
    _write(tmp_path / "ml-100k" / "u.item", U_ITEM, encoding="latin-1")
    data = load_movielens_100k(ratings)
    assert (len(data), data.n_users, data.n_items, data.name) == (3, 2, 2, "ml-100k")
    assert data.item_info["20"].title == "Twenty (1996)"
    assert data.item_info["20"].categories == ("Western",)
    np.testing.assert_array_equal(data.weights, [5.0, 3.0, 4.0])


def test_movielens_100k_reads_any_u_data_format_file_without_u_item(tmp_path: Path) -> None:
    data = load_movielens_100k(_write(tmp_path / "u1.base", U_DATA))
    assert (len(data), data.item_info, data.name) == (3, {}, "ml-100k-u1")


def test_movielens_100k_file_reports_bad_rows_against_that_file(tmp_path: Path) -> None:
    ratings = _write(tmp_path / "u1.test", U_DATA + "3\t1\tfive\t881250951\n")
    with pytest.raises(DataFormatError) as caught:
        load_movielens_100k(ratings)
    assert (caught.value.path, caught.value.line) == (str(ratings), 4)
    assert caught.value.problem == "rating 'five' is not a number"


def test_movielens_csv_reads_a_ratings_file_with_titles_from_movies_csv_beside_it(
    tmp_path: Path,
) -> None:
    ratings = _write(tmp_path / "ml-latest-small" / "ratings.csv", RATINGS_CSV)
    _write(tmp_path / "ml-latest-small" / "movies.csv", MOVIES_CSV)
    data = load_movielens_csv(ratings)
    assert (len(data), data.name) == (2, "ml-latest-small")
    assert data.item_info["3"].categories == ("Action", "Crime")
    assert data.item_info["1"].title == "Toy Story (1995)"


def test_movielens_csv_reads_any_ratings_format_file_without_movies_csv(tmp_path: Path) -> None:
    data = load_movielens_csv(_write(tmp_path / "train.csv", RATINGS_CSV))
    assert (len(data), data.item_info, data.name) == (2, {}, "train")


def test_lastfm_reads_a_user_artists_file_with_names_from_artists_dat_beside_it(
    tmp_path: Path,
) -> None:
    ratings = _write(tmp_path / "hetrec" / "user_artists.dat", USER_ARTISTS)
    _write(tmp_path / "hetrec" / "artists.dat", ARTISTS)
    data = load_lastfm(ratings)
    assert (len(data), data.name) == (2, "lastfm")
    assert data.item_info["51"].title == "Duran Duran"
    np.testing.assert_array_equal(data.weights, [13883.0, 11690.0])


def test_lastfm_reads_any_user_artists_format_file_without_artists_dat(tmp_path: Path) -> None:
    data = load_lastfm(_write(tmp_path / "plays.tsv", USER_ARTISTS))
    assert (len(data), data.item_info, data.name) == (2, {}, "lastfm-plays")


@pytest.mark.parametrize(
    ("format", "file", "text"),
    [
        ("movielens-100k", "u.data", U_DATA),
        ("movielens-csv", "ratings.csv", RATINGS_CSV),
        ("lastfm", "user_artists.dat", USER_ARTISTS),
    ],
)
def test_load_interactions_accepts_a_file_or_its_folder_alike(
    tmp_path: Path, format: str, file: str, text: str
) -> None:
    ratings = _write(tmp_path / "data" / file, text)
    from_file = load_interactions(ratings, format)
    from_folder = load_interactions(ratings.parent, format)
    assert len(from_file) == len(from_folder) > 0
    assert from_file.name == from_folder.name
    assert from_file.users.ids() == from_folder.users.ids()
    np.testing.assert_array_equal(from_file.weights, from_folder.weights)


@pytest.mark.parametrize(
    ("loader", "what"),
    [
        (load_movielens_100k, "MovieLens 100K"),
        (load_movielens_csv, "MovieLens CSV"),
        (load_lastfm, "Last.fm"),
    ],
)
def test_loaders_say_file_or_directory_not_found_for_a_missing_path(
    tmp_path: Path, loader: object, what: str
) -> None:
    assert callable(loader)
    missing = tmp_path / "nowhere" / "u.data"
    with pytest.raises(
        DataError, match=re.escape(f"{what} file or directory not found: {missing}")
    ):
        loader(missing)


# --- empty ratings files fail in the loader ---------------------------------------------


EMPTY_RATINGS = [
    ("movielens-100k", "u.data", ""),
    ("movielens-100k", "u.data", "\n\n"),
    ("movielens-csv", "ratings.csv", "userId,movieId,rating,timestamp\n"),
    ("movielens-csv", "ratings.csv", ""),
    ("lastfm", "user_artists.dat", "userID\tartistID\tweight\r\n"),
    ("lastfm", "user_artists.dat", ""),
]


@pytest.mark.parametrize(
    ("format", "file", "text", "as_file"),
    [
        *[(*case, True) for case in EMPTY_RATINGS],
        *[(*case, False) for case in EMPTY_RATINGS],
        ("movielens-100k", "u1.test", "", True),
    ],
)
def test_empty_ratings_file_fails_in_the_loader_naming_the_file(
    tmp_path: Path, format: str, file: str, text: str, as_file: bool
) -> None:
    ratings = _write(tmp_path / "data" / file, text)
    with pytest.raises(DataError, match=re.escape(f"no interactions in {ratings}")):
        load_interactions(ratings if as_file else ratings.parent, format)


def test_movielens_100k_fold_rejects_an_empty_test_file(tmp_path: Path) -> None:
    _write(tmp_path / "u1.base", U_DATA)
    empty = _write(tmp_path / "u1.test", "")
    with pytest.raises(DataError, match=re.escape(f"no interactions in {empty}")):
        movielens_100k_fold(tmp_path, 1)


@pytest.mark.parametrize("as_file", [True, False], ids=["file", "folder"])
def test_cli_reports_an_empty_u_data_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_file: bool
) -> None:
    ratings = _write(tmp_path / "ml-100k" / "u.data", "")
    target = ratings if as_file else ratings.parent
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--interactions", str(target), "--format", "movielens-100k"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert f"error: no interactions in {ratings}" in err
    assert "Traceback" not in err
    assert "training" not in captured.out


# --- the real datasets ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "file", "format", "expected", "titled"),
    [
        ("ml-100k", "u.data", "movielens-100k", (100_000, 943, 1682), 1682),
        ("ml-100k", "u1.base", "movielens-100k", (80_000, 943, 1650), 1682),
        ("ml-100k", "u1.test", "movielens-100k", (20_000, 459, 1410), 1682),
        ("ml-latest-small", "ratings.csv", "movielens-csv", (100_836, 610, 9724), 9742),
        ("lastfm-hetrec2011-2k", "user_artists.dat", "lastfm", (92_834, 1892, 17_632), 17_632),
    ],
)
def test_load_interactions_reads_the_real_ratings_files_directly(
    datasets_root: Path,
    folder: str,
    file: str,
    format: str,
    expected: tuple[int, int, int],
    titled: int,
) -> None:
    data = load_interactions(datasets_root / folder / file, format)
    assert (len(data), data.n_users, data.n_items) == expected
    assert len(data.item_info) == titled


def test_real_u1_base_and_u1_test_files_match_the_official_fold(ml100k_dir: Path) -> None:
    base = load_movielens_100k(ml100k_dir / "u1.base")
    held_out = load_movielens_100k(ml100k_dir / "u1.test")
    assert base.item_info["1"].title == "Toy Story (1995)"
    train, test = movielens_100k_fold(ml100k_dir, 1)
    assert (len(base), len(held_out)) == (len(train), len(test)) == (80_000, 20_000)
    assert (base.name, held_out.name) == ("ml-100k-u1", "ml-100k-u1")
    np.testing.assert_array_equal(base.weights, train.weights)
    np.testing.assert_array_equal(held_out.timestamps, test.timestamps)


def test_cli_trains_on_u1_base_and_evaluates_on_u1_test(
    ml100k_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    model = tmp_path / "model"
    trained = runner.invoke(
        app,
        [
            "train",
            "--interactions",
            str(ml100k_dir / "u1.base"),
            "--format",
            "movielens-100k",
            "--algorithm",
            "most_popular",
            "--output",
            str(model),
        ],
        catch_exceptions=False,
    )
    assert trained.exit_code == 0, trained.output
    assert "943 users" in trained.output and "80000 interactions" in trained.output
    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(model),
            "--test",
            str(ml100k_dir / "u1.test"),
            "--format",
            "movielens-100k",
            "--k",
            "10",
        ],
        catch_exceptions=False,
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "NDCG@10" in evaluated.output
