"""The loaders on the real datasets: counts from MANIFEST.md, metadata, speed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlrec.core import Interactions, ItemInfo
from mlrec.data import (
    load_dataset,
    load_interactions,
    load_lastfm,
    load_movielens_100k,
    load_movielens_csv,
)


def _distinct_pairs(data: Interactions) -> int:
    return len(np.unique(data.user_idx * data.n_items + data.item_idx))


def test_movielens_100k_loads_every_rating_with_manifest_counts(ml100k_dir: Path) -> None:
    data = load_movielens_100k(ml100k_dir)
    assert (len(data), data.n_users, data.n_items) == (100_000, 943, 1682)
    assert _distinct_pairs(data) == 100_000
    assert data.name == "ml-100k"
    histogram = np.bincount(data.weights.astype(np.int64), minlength=6)[1:]
    assert histogram.tolist() == [6110, 11370, 27145, 34174, 21201]


def test_movielens_100k_keeps_external_ids_timestamps_and_titles(ml100k_dir: Path) -> None:
    data = load_movielens_100k(ml100k_dir)
    # First line of u.data: 196 242 3 881250949
    assert data.users.id(int(data.user_idx[0])) == "196"
    assert data.items.id(int(data.item_idx[0])) == "242"
    assert (data.weights[0], data.timestamps[0]) == (3.0, 881250949)
    assert data.item_info["1"] == ItemInfo(
        "Toy Story (1995)", ("Animation", "Children's", "Comedy")
    )
    assert len(data.item_info) == 1682


def test_movielens_csv_loads_latest_small_with_manifest_counts(ml_small_dir: Path) -> None:
    data = load_movielens_csv(ml_small_dir)
    assert (len(data), data.n_users, data.n_items) == (100_836, 610, 9724)
    assert int((data.weights >= 4.0).sum()) == 48_580
    assert len(data.item_info) == 9742
    assert (data.timestamps > 0).all()


def test_movielens_csv_reads_quoted_titles_and_pipe_genres(ml_small_dir: Path) -> None:
    info = load_movielens_csv(ml_small_dir).item_info
    assert info["11"] == ItemInfo("American President, The (1995)", ("Comedy", "Drama", "Romance"))
    assert info["1"].categories == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    no_genres = [i for i in info.values() if not i.categories]
    assert no_genres  # "(no genres listed)" becomes no categories
    assert all("(no genres listed)" not in i.categories for i in info.values())


def test_lastfm_loads_play_counts_with_manifest_counts(lastfm_dir: Path) -> None:
    data = load_lastfm(lastfm_dir)
    assert (len(data), data.n_users, data.n_items) == (92_834, 1892, 17_632)
    # First data row: 2 51 13883
    assert data.users.id(int(data.user_idx[0])) == "2"
    assert data.items.id(int(data.item_idx[0])) == "51"
    assert data.weights[0] == 13883.0
    assert (data.timestamps == 0).all()


def test_lastfm_takes_artist_names_from_artists_dat(lastfm_dir: Path) -> None:
    data = load_lastfm(lastfm_dir)
    assert data.item_info["1"].title == "MALICE MIZER"
    assert data.item_info["51"].title == "Duran Duran"


@pytest.mark.parametrize(
    ("folder", "format", "expected"),
    [
        ("ml-100k", "movielens-100k", 100_000),
        ("ml-latest-small", "movielens-csv", 100_836),
        ("lastfm-hetrec2011-2k", "lastfm", 92_834),
    ],
)
def test_load_interactions_dispatches_on_format_name(
    datasets_root: Path, folder: str, format: str, expected: int
) -> None:
    assert len(load_interactions(datasets_root / folder, format)) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("ml-100k", 100_000), ("ml-latest-small", 100_836), ("lastfm", 92_834)],
)
def test_load_dataset_finds_real_folders_under_data_dir(
    datasets_root: Path, name: str, expected: int
) -> None:
    data = load_dataset(name, data_dir=datasets_root)
    assert len(data) == expected
    assert data.name == name


def test_movielens_100k_ratings_take_the_fast_path(ml100k_dir: Path) -> None:
    # the id round-trip check must not push the real files onto the slow parser
    from mlrec.data._parse import read_events_fast

    events = read_events_fast(ml100k_dir / "u.data", "\t", has_timestamp=True)
    assert events is not None
    assert isinstance(events.users, np.ndarray)
