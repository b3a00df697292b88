"""load_csv: string ids, optional header, optional weight and timestamp columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlrec.data import load_csv


def _csv(tmp_path: Path, text: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_csv_defaults_weight_to_one_and_timestamp_to_zero_without_those_columns(
    tmp_path: Path,
) -> None:
    data = load_csv(_csv(tmp_path, "alice,book-1\nbob,book-2\nalice,book-2\n"))
    assert data.users.ids() == ["alice", "bob"]
    assert data.items.ids() == ["book-1", "book-2"]
    np.testing.assert_array_equal(data.weights, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(data.timestamps, [0, 0, 0])
    assert data.name == "events"


def test_load_csv_detects_header_naming_columns(tmp_path: Path) -> None:
    data = load_csv(_csv(tmp_path, "user_id,item_id,weight,timestamp\n7,42,2.5,1700000000\n"))
    assert len(data) == 1
    assert data.users.ids() == ["7"]
    assert (data.weights[0], data.timestamps[0]) == (2.5, 1_700_000_000)


def test_load_csv_detects_header_of_known_names_in_any_case_and_spacing(tmp_path: Path) -> None:
    data = load_csv(_csv(tmp_path, " User_ID , Movie ,Rating\nalice,i1,3\n"))
    assert (data.users.ids(), data.items.ids(), data.weights[0]) == (["alice"], ["i1"], 3.0)


def test_load_csv_reads_first_line_as_data_when_its_cells_are_not_all_column_names(
    tmp_path: Path,
) -> None:
    data = load_csv(_csv(tmp_path, "customer,sku\nalice,i1\n"))
    assert data.users.ids() == ["customer", "alice"]
    assert data.items.ids() == ["sku", "i1"]
    data = load_csv(_csv(tmp_path, "alice,apple,2\nbob,pear,3\n"))
    assert data.users.ids() == ["alice", "bob"]
    np.testing.assert_array_equal(data.weights, [2.0, 3.0])


def test_load_csv_header_true_reads_unknown_names_as_positional_columns(tmp_path: Path) -> None:
    data = load_csv(_csv(tmp_path, "who,what,how_much\nalice,i1,3\n"), header=True)
    assert (len(data), data.users.ids(), data.weights[0]) == (1, ["alice"], 3.0)


def test_load_csv_treats_first_row_as_data_without_header_names(tmp_path: Path) -> None:
    data = load_csv(_csv(tmp_path, "user,item\nalice,i1\n"), header=False)
    assert data.users.ids() == ["user", "alice"]
    data = load_csv(_csv(tmp_path, "1,2\n3,4\n"))
    assert data.users.ids() == ["1", "3"]


def test_load_csv_maps_named_columns_in_any_order(tmp_path: Path) -> None:
    data = load_csv(_csv(tmp_path, "item,timestamp,user,rating\ni1,100,alice,4\n"))
    assert data.users.ids() == ["alice"]
    assert data.items.ids() == ["i1"]
    assert (data.weights[0], data.timestamps[0]) == (4.0, 100)


def test_load_csv_strips_spaces_and_honours_quotes(tmp_path: Path) -> None:
    data = load_csv(_csv(tmp_path, ' alice , "book, vol. 1",2\n'))
    assert data.users.ids() == ["alice"]
    assert data.items.ids() == ["book, vol. 1"]


def test_load_csv_parses_iso_8601_and_decimal_timestamps(tmp_path: Path) -> None:
    data = load_csv(_csv(tmp_path, "a,i,1,2024-01-01T00:00:00+00:00\nb,i,1,1704067200.9\n"))
    np.testing.assert_array_equal(data.timestamps, [1_704_067_200, 1_704_067_200])


def test_load_csv_reads_tab_separated_files_with_delimiter(tmp_path: Path) -> None:
    data = load_csv(_csv(tmp_path, "alice\ti1\t2\n", "events.tsv"), delimiter="\t", name="mine")
    assert (len(data), data.name, data.weights[0]) == (1, "mine", 2.0)
