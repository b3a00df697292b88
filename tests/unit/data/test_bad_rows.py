"""Malformed input becomes a DataFormatError naming the file, the line and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlrec.cli import main
from mlrec.core import DataError, DataFormatError, ValidationError
from mlrec.data import (
    load_csv,
    load_interactions,
    load_lastfm,
    load_movielens_100k,
    load_movielens_csv,
)
from mlrec.data._parse import integers_are_canonical


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def _ml100k(tmp_path: Path, udata: str) -> Path:
    folder = tmp_path / "ml-100k"
    _write(folder / "u.data", udata)
    flags = "|".join(["0"] * 18 + ["1"])
    _write(
        folder / "u.item",
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags}\n"
        f"2|Café (1996)|01-Jan-1996||http://y|{flags}\n",
        encoding="latin-1",
    )
    return folder


GOOD = "1\t1\t5\t881250949\n2\t2\t3\t881250950\n"


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("3\t1\t4\n", "expected 4 columns"),
        ("3\t1\t4\t5\t6\n", "expected 4 columns"),
        ("3\t1\tfive\t881250951\n", "rating 'five' is not a number"),
        ("3\t1\tnan\t881250951\n", "not a finite number"),
        ("3\t1\t4\tyesterday\n", "timestamp 'yesterday' is not an integer"),
        ("\t1\t4\t881250951\n", "user id is empty"),
        ("3\t \t4\t881250951\n", "item id is empty"),
        ("3,1,4,881250951\n", "expected 4 columns separated by '\\t', found 1"),
    ],
)
def test_movielens_100k_reports_line_and_problem_when_row_is_malformed(
    tmp_path: Path, bad_line: str, problem: str
) -> None:
    folder = _ml100k(tmp_path, GOOD + bad_line)
    with pytest.raises(DataFormatError) as caught:
        load_movielens_100k(folder)
    assert caught.value.line == 3
    assert problem in caught.value.problem
    assert caught.value.path == str(folder / "u.data")
    assert f"u.data, line 3: {caught.value.problem}" in str(caught.value)


def test_movielens_100k_counts_lines_across_blank_lines(tmp_path: Path) -> None:
    folder = _ml100k(tmp_path, GOOD + "\n\n3\t1\tx\t1\n")
    with pytest.raises(DataFormatError) as caught:
        load_movielens_100k(folder)
    assert caught.value.line == 5


def test_movielens_100k_skips_blank_lines_when_rows_are_good(tmp_path: Path) -> None:
    folder = _ml100k(tmp_path, "\n" + GOOD + "\n")
    data = load_movielens_100k(folder)
    assert len(data) == 2
    assert data.item_info["2"].title == "Café (1996)"
    assert data.item_info["2"].categories == ("Western",)


def test_movielens_100k_accepts_non_integer_ids_through_the_slow_path(tmp_path: Path) -> None:
    data = load_movielens_100k(_ml100k(tmp_path, "u1\tm1\t4\t10\nu2\tm1\t2\t11\n"))
    assert data.users.ids() == ["u1", "u2"]
    assert data.items.ids() == ["m1"]
    np.testing.assert_array_equal(data.weights, [4.0, 2.0])


def test_movielens_100k_reports_bad_genre_flag_in_u_item(tmp_path: Path) -> None:
    folder = _ml100k(tmp_path, GOOD)
    flags = "|".join(["0"] * 18 + ["2"])
    _write(folder / "u.item", f"1|A (1995)|x||u|{flags}\n", encoding="latin-1")
    with pytest.raises(DataFormatError) as caught:
        load_movielens_100k(folder)
    assert (caught.value.line, caught.value.path) == (1, str(folder / "u.item"))
    assert "genre flags must be 0 or 1" in caught.value.problem


def test_movielens_100k_reports_short_u_item_row(tmp_path: Path) -> None:
    folder = _ml100k(tmp_path, GOOD)
    _write(folder / "u.item", "1|A (1995)|x\n", encoding="latin-1")
    with pytest.raises(DataFormatError, match=r"line 1: expected at least 21 columns"):
        load_movielens_100k(folder)


def test_movielens_100k_raises_data_error_when_folder_or_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="directory not found"):
        load_movielens_100k(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"u\.data"):
        load_movielens_100k(tmp_path / "empty")


def test_movielens_csv_counts_the_header_as_line_one(tmp_path: Path) -> None:
    folder = tmp_path / "ml-latest-small"
    _write(
        folder / "ratings.csv",
        "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,four,964981247\r\n",
    )
    with pytest.raises(DataFormatError) as caught:
        load_movielens_csv(folder)
    assert caught.value.line == 3
    assert caught.value.problem == "rating 'four' is not a number"


def test_movielens_csv_reports_unclosed_quote_in_movies(tmp_path: Path) -> None:
    folder = tmp_path / "ml-latest-small"
    _write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,9\n")
    _write(folder / "movies.csv", 'movieId,title,genres\n1,"Toy Story (1995),Comedy\n')
    with pytest.raises(DataFormatError) as caught:
        load_movielens_csv(folder)
    assert caught.value.path == str(folder / "movies.csv")
    assert caught.value.line == 2


def test_lastfm_reports_non_numeric_play_count(tmp_path: Path) -> None:
    folder = tmp_path / "lastfm"
    _write(
        folder / "user_artists.dat", "userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\tmany\r\n"
    )
    with pytest.raises(DataFormatError) as caught:
        load_lastfm(folder)
    assert (caught.value.line, caught.value.problem) == (3, "weight 'many' is not a number")


def test_lastfm_reports_wrong_column_count(tmp_path: Path) -> None:
    folder = tmp_path / "lastfm"
    _write(folder / "user_artists.dat", "userID\tartistID\tweight\r\n2\t51\r\n")
    with pytest.raises(DataFormatError, match=r"line 2: expected 3 columns"):
        load_lastfm(folder)


def test_lastfm_reads_crlf_file_without_header(tmp_path: Path) -> None:
    folder = tmp_path / "lastfm"
    _write(folder / "user_artists.dat", "2\t51\t10\r\n3\t51\t5\r\n")
    _write(
        folder / "artists.dat", "id\tname\turl\tpictureURL\n51\tDuran Duran\thttp://x\thttp://y\n"
    )
    data = load_lastfm(folder)
    assert len(data) == 2
    assert data.item_info["51"].title == "Duran Duran"


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("alice,i1\nbob,i2,3\n", 2, "expected 2 columns separated by ',', found 3"),
        ("alice,i1,1.0\nbob,i2,lots\n", 2, "weight 'lots' is not a number"),
        ("user_id,item_id,weight\nalice,i1,1\nbob,,2\n", 3, "item id is empty"),
        ("alice,i1,1,2024-01-01T00:00:00+00:00\nbob,i2,1,someday\n", 2, "timestamp 'someday'"),
        ("alice,i1,inf\n", 1, "weight 'inf' is not a finite number"),
        ("alice\n", 1, "expected 2 to 4 columns"),
        ("a,b,1,2,3\n", 1, "expected 2 to 4 columns"),
        ('alice,"i1\n', 1, "bad CSV quoting"),
    ],
)
def test_load_csv_reports_line_and_problem_when_row_is_malformed(
    tmp_path: Path, content: str, line: int, problem: str
) -> None:
    path = _write(tmp_path / "events.csv", content)
    with pytest.raises(DataFormatError) as caught:
        load_csv(path)
    assert caught.value.line == line
    assert problem in caught.value.problem
    assert caught.value.path == str(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("alice,apple,abc\n", "weight 'abc' is not a number"),
        ("alice,apple,abc\nbob,pear,2\n", "weight 'abc' is not a number"),
        ("who,what,how_much\nalice,i1,3\n", "weight 'how_much' is not a number"),
        ("alice,apple,1,noon\n", "timestamp 'noon' is neither Unix seconds"),
        ("user_id,rating\nalice,3\n", "header has no item column"),
        ("item_id,weight\ni1,3\n", "header has no user column"),
        ("weight,timestamp\n1,2\n", "header has no user column and no item column"),
        ("user_id\nalice\n", "header has no item column"),
        ("user_id,user,item_id\na,b,c\n", "'user' repeats the user column"),
    ],
)
def test_load_csv_reports_bad_first_line_instead_of_dropping_it_as_a_header(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = _write(tmp_path / "events.csv", content)
    with pytest.raises(DataFormatError) as caught:
        load_csv(path)
    assert (caught.value.path, caught.value.line) == (str(path), 1)
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}, line 1: ")


def test_load_csv_names_the_accepted_column_names_when_header_lacks_one(tmp_path: Path) -> None:
    path = _write(tmp_path / "events.csv", "user_id,rating\nalice,3\n")
    with pytest.raises(DataFormatError) as caught:
        load_csv(path)
    assert "item_id" in caught.value.problem
    assert "movie_id" in caught.value.problem


def test_load_csv_hints_when_a_partly_named_first_line_is_read_as_data(tmp_path: Path) -> None:
    path = _write(tmp_path / "events.csv", "user_id,item_id,qty\nalice,i1,3\n")
    with pytest.raises(DataFormatError) as caught:
        load_csv(path)
    assert caught.value.line == 1
    assert "weight 'qty' is not a number" in caught.value.problem
    assert "'qty' is not a known column name" in caught.value.problem


def test_cli_reports_bad_csv_first_line_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "events.csv", "alice,apple,abc\nbob,pear,2\n")
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train",
                "--interactions",
                str(path),
                "--format",
                "csv",
                "--output",
                str(tmp_path / "m"),
            ]
        )
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"error: {path}, line 1: weight 'abc' is not a number" in err
    assert "Traceback" not in err


def test_load_csv_reports_invalid_utf8_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(b"alice,i1\nbob,i\xff2\n")
    with pytest.raises(DataFormatError) as caught:
        load_csv(path)
    assert caught.value.line == 2
    assert "utf-8" in caught.value.problem


def test_load_csv_raises_data_error_when_file_is_empty_or_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no rows"):
        load_csv(_write(tmp_path / "empty.csv", ""))
    with pytest.raises(DataError, match="not found"):
        load_csv(tmp_path / "missing.csv")


def test_load_interactions_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown format 'parquet'"):
        load_interactions(tmp_path, "parquet")


def test_load_csv_refuses_a_weight_beyond_float32_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "huge.csv", "u1,i1,1\nu1,i2,1e39\nu2,i1,2\n")
    with pytest.raises(DataFormatError) as caught:
        load_csv(path)
    assert caught.value.line == 2
    assert caught.value.problem.startswith("weight '1e39' is out of range")


def test_movielens_100k_refuses_a_rating_beyond_float32_on_the_fast_path(tmp_path: Path) -> None:
    # integer ids: read_events_fast parses this file, which used to store inf
    folder = _ml100k(tmp_path, GOOD + "3\t1\t-1e39\t881250951\n")
    with pytest.raises(DataFormatError) as caught:
        load_movielens_100k(folder)
    assert caught.value.line == 3
    assert caught.value.problem.startswith("rating '-1e39' is out of range")


def test_lastfm_refuses_a_play_count_beyond_float32_with_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "lastfm"
    _write(folder / "user_artists.dat", "userID\tartistID\tweight\n2\t51\t4e38\n2\t52\t1\n")
    with pytest.raises(DataFormatError) as caught:
        load_lastfm(folder)
    assert caught.value.line == 2
    assert "out of range" in caught.value.problem


def test_a_weight_at_the_float32_limit_is_kept_finite(tmp_path: Path) -> None:
    data = load_csv(_write(tmp_path / "edge.csv", "u1,i1,3.4e38\nu2,i1,1\n"))
    assert np.isfinite(data.weights).all()


def test_movielens_100k_keeps_zero_padded_ids_distinct_from_plain_ones(tmp_path: Path) -> None:
    # every id is an integer, so the fast path used to read 007 as 7 and merge the users
    udata = "007\t10\t5\t1\n7\t20\t3\t2\n8\t010\t4\t3\n8\t30\t4\t3\n"
    data = load_movielens_100k(_ml100k(tmp_path, udata))
    assert data.users.ids() == ["007", "7", "8"]
    assert data.items.ids() == ["10", "20", "010", "30"]


@pytest.mark.parametrize("user", ["+7", " 7", "-0", "-07", "\u00a07"])
def test_lastfm_keeps_ids_whose_text_is_not_their_decimal_value(tmp_path: Path, user: str) -> None:
    folder = tmp_path / "lastfm"
    _write(folder / "user_artists.dat", f"userID\tartistID\tweight\n{user}\t51\t3\n7\t51\t2\n")
    data = load_lastfm(folder)
    assert data.users.ids() == [user, "7"]


def test_movielens_csv_keeps_zero_padded_ids_distinct(tmp_path: Path) -> None:
    folder = tmp_path / "ml-latest-small"
    _write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,01,4.0,5\n1,1,0.5,6\n")
    _write(folder / "movies.csv", "movieId,title,genres\n1,Toy Story (1995),Comedy\n")
    data = load_movielens_csv(folder)
    assert data.items.ids() == ["01", "1"]


@pytest.mark.parametrize(
    ("data", "canonical"),
    [
        (b"196\t242\t3\t881250949\n0\t1\t0.5\t0\n", True),
        (b"-7\t1\t-0.5\t0\r\n", True),
        (b"007\t1\t1\t1\n", False),
        (b"1\t1\t1\t1\n1\t010\t1\t1\n", False),
        (b"+7\t1\t1\t1\n", False),
        (b"1\t 7\t1\t1\n", False),
        (b"-0\t1\t1\t1\n", False),
        (b"1\t1\t1\t1\r07\t1\t1\t1\n", False),
        (b"\xc2\xa07\t1\t1\t1\n", False),
    ],
)
def test_integers_are_canonical_only_when_every_field_reads_back_as_its_text(
    data: bytes, canonical: bool
) -> None:
    assert integers_are_canonical(data, "\t") is canonical


def test_movielens_csv_reads_quoted_fields_without_their_quotes(tmp_path: Path) -> None:
    # a ratings.csv written with every field quoted (csv.QUOTE_ALL, pandas quoting=1)
    folder = tmp_path / "ml-latest-small"
    _write(
        folder / "ratings.csv",
        '"userId","movieId","rating","timestamp"\n"1","31","2.5","1260759144"\n',
    )
    _write(folder / "movies.csv", 'movieId,title,genres\n31,"Dangerous Minds (1995)",Drama\n')
    data = load_movielens_csv(folder)
    assert data.users.ids() == ["1"]
    assert data.items.ids() == ["31"]
    assert data.weights.tolist() == [2.5]
    assert data.item_info["31"].title == "Dangerous Minds (1995)"


def test_movielens_csv_reports_a_broken_quote_in_ratings_with_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "ml-latest-small"
    _write(folder / "ratings.csv", 'userId,movieId,rating,timestamp\n1,31,2.5,1\n"2,31,2.5,1\n')
    with pytest.raises(DataFormatError) as caught:
        load_movielens_csv(folder)
    assert caught.value.line == 3
    assert "quoting" in caught.value.problem
