"""Splits: disjoint, complete, shared id maps, the promised ratios, deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlrec.core import Interactions, ValidationError
from mlrec.data import (
    filter_test_to_train,
    leave_last_out,
    load_movielens_100k,
    make_demo,
    movielens_100k_fold,
    random_split_per_user,
    stratified_split,
    time_split,
)


@pytest.fixture(scope="module")
def demo() -> Interactions:
    return make_demo(n_users=300, n_items=120, seed=7)


def _rows(data: Interactions) -> set[tuple[int, int, int]]:
    return set(
        zip(data.user_idx.tolist(), data.item_idx.tolist(), data.timestamps.tolist(), strict=True)
    )


def _assert_partition(whole: Interactions, train: Interactions, test: Interactions) -> None:
    assert train.users is whole.users and test.users is whole.users
    assert train.items is whole.items and test.items is whole.items
    assert len(train) + len(test) == len(whole)
    assert _rows(train) | _rows(test) == _rows(whole)
    assert not _rows(train) & _rows(test)


@pytest.mark.parametrize(
    "split",
    [
        lambda d: random_split_per_user(d),
        lambda d: stratified_split(d, 0.3, by="item"),
        lambda d: leave_last_out(d, n=2),
        lambda d: time_split(d, 0.2),
    ],
    ids=["random_per_user", "stratified_by_item", "leave_last_out", "time_split"],
)
def test_split_is_disjoint_and_covers_everything_with_shared_id_maps(
    demo: Interactions, split: object
) -> None:
    assert callable(split)
    train, test = split(demo)
    _assert_partition(demo, train, test)


def test_random_split_per_user_holds_out_rounded_ratio_of_each_user(demo: Interactions) -> None:
    _, test = random_split_per_user(demo, test_ratio=0.25, seed=3)
    counts = np.bincount(demo.user_idx, minlength=demo.n_users)
    held = np.bincount(test.user_idx, minlength=demo.n_users)
    expected = [min(round(n * 0.25), max(n - 1, 0)) for n in counts.tolist()]
    assert held.tolist() == expected


def test_random_split_per_user_matches_recommenders_train_size_at_ratio_three_quarters() -> None:
    sizes = np.arange(1, 60)
    users = np.repeat(np.arange(len(sizes)), sizes)
    data = Interactions.from_arrays([str(u) for u in users], [str(i) for i in range(len(users))])
    train, _ = random_split_per_user(data, test_ratio=0.25)
    kept = np.bincount(train.user_idx, minlength=len(sizes))
    # python_stratified_split keeps round(0.75 * n) rows of each user in train.
    assert kept.tolist() == [round(0.75 * n) for n in sizes.tolist()]


def test_random_split_per_user_keeps_single_event_users_in_train() -> None:
    data = Interactions.from_arrays(["a", "b", "b", "b", "b"], ["1", "1", "2", "3", "4"])
    train, test = random_split_per_user(data, test_ratio=0.9)
    assert "a" in {data.users.id(int(u)) for u in train.user_idx}
    assert np.bincount(train.user_idx, minlength=2).tolist() == [1, 1]
    assert len(test) == 3


def test_random_split_per_user_is_deterministic_for_a_seed(demo: Interactions) -> None:
    first, _ = random_split_per_user(demo, seed=11)
    again, _ = random_split_per_user(demo, seed=11)
    other, _ = random_split_per_user(demo, seed=12)
    assert _rows(first) == _rows(again)
    assert _rows(first) != _rows(other)


def test_random_split_per_user_holds_out_a_quarter_of_each_ml100k_user(
    ml100k_dir: Path,
) -> None:
    data = load_movielens_100k(ml100k_dir)
    _, test = random_split_per_user(data)
    assert len(test) == 25_008  # sum of round(n / 4) over the 943 users


def test_stratified_split_by_item_holds_out_per_item(demo: Interactions) -> None:
    _, test = stratified_split(demo, 0.25, seed=1, by="item")
    counts = np.bincount(demo.item_idx, minlength=demo.n_items)
    held = np.bincount(test.item_idx, minlength=demo.n_items)
    assert held.tolist() == [min(round(n * 0.25), max(n - 1, 0)) for n in counts.tolist()]


def test_leave_last_out_holds_out_each_users_latest_events(demo: Interactions) -> None:
    train, test = leave_last_out(demo, n=2)
    assert np.bincount(test.user_idx, minlength=demo.n_users).tolist() == [2] * demo.n_users
    last_train = np.full(demo.n_users, -1)
    np.maximum.at(last_train, train.user_idx, train.timestamps)
    first_test = np.full(demo.n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_test, test.user_idx, test.timestamps)
    assert (last_train <= first_test).all()


def test_leave_last_out_breaks_timestamp_ties_by_row_order() -> None:
    data = Interactions.from_arrays(["u", "u", "u"], ["a", "b", "c"], timestamps=[5, 9, 9])
    _, test = leave_last_out(data)
    assert test.items.ids(test.item_idx) == ["c"]


def test_leave_last_out_keeps_one_event_in_train_for_short_histories() -> None:
    data = Interactions.from_arrays(["u", "v", "v"], ["a", "a", "b"], timestamps=[1, 1, 2])
    train, test = leave_last_out(data, n=5)
    assert len(train) == 2 and len(test) == 1


def test_time_split_puts_no_train_event_after_a_test_event(demo: Interactions) -> None:
    train, test = time_split(demo, test_ratio=0.2)
    assert train.timestamps.max() < test.timestamps.min()
    assert len(test) == pytest.approx(0.2 * len(demo), abs=2)


def test_time_split_sends_all_ties_at_the_cut_to_test() -> None:
    data = Interactions.from_arrays(list("abcd"), list("wxyz"), timestamps=[1, 2, 2, 2])
    train, test = time_split(data, test_ratio=0.5)
    assert (len(train), len(test)) == (1, 3)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_splits_reject_ratio_outside_open_unit_interval(demo: Interactions, bad: float) -> None:
    with pytest.raises(ValidationError):
        random_split_per_user(demo, test_ratio=bad)
    with pytest.raises(ValidationError):
        time_split(demo, test_ratio=bad)


def test_filter_test_to_train_drops_cold_users_and_items() -> None:
    data = Interactions.from_arrays(["a", "a", "b", "c"], ["x", "y", "x", "z"])
    train, test = data.subset(np.array([0, 2])), data.subset(np.array([1, 3]))
    _, warm = filter_test_to_train(train, test)
    assert len(warm) == 0  # "y" and user "c"/item "z" never occur in train
    _, kept = filter_test_to_train(data, test)
    assert len(kept) == 2


def test_filter_test_to_train_rejects_different_id_maps() -> None:
    one = Interactions.from_arrays(["a"], ["x"])
    other = Interactions.from_arrays(["b"], ["x"])
    with pytest.raises(ValidationError):
        filter_test_to_train(one, other)


@pytest.mark.parametrize(("fold", "sizes"), [(1, (80_000, 20_000)), ("a", (90_570, 9_430))])
def test_movielens_100k_fold_reads_official_files_with_shared_maps(
    ml100k_dir: Path, fold: int | str, sizes: tuple[int, int]
) -> None:
    train, test = movielens_100k_fold(ml100k_dir, fold)
    assert (len(train), len(test)) == sizes
    assert train.users is test.users and train.items is test.items
    assert (train.n_users, train.n_items) == (943, 1682)
    assert train.item_info["1"].title == "Toy Story (1995)"
    if fold == "a":
        assert np.bincount(test.user_idx).tolist() == [10] * 943
    whole = load_movielens_100k(ml100k_dir)
    assert len(_rows(train) | _rows(test)) == len(whole)


def test_movielens_100k_fold_rejects_unknown_fold(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="fold"):
        movielens_100k_fold(tmp_path, 6)


def test_time_split_refuses_data_without_timestamps() -> None:
    # Last.fm and CSV files without a timestamp column: every event at 0
    data = Interactions.from_arrays(list("aabbc"), list("vwxyz"))
    with pytest.raises(ValidationError, match="needs timestamps"):
        time_split(data, test_ratio=0.25)


def test_time_split_refuses_a_cut_among_events_tied_at_the_earliest_timestamp() -> None:
    data = Interactions.from_arrays(list("abcd"), list("wxyz"), timestamps=[1, 1, 1, 2])
    with pytest.raises(ValidationError, match="would go to test"):
        time_split(data, test_ratio=0.5)
    train, test = time_split(data, test_ratio=0.25)
    assert (len(train), len(test)) == (3, 1)


def test_leave_last_out_refuses_data_without_timestamps() -> None:
    data = Interactions.from_arrays(["u", "u", "v", "v"], list("abab"))
    with pytest.raises(ValidationError, match="needs timestamps"):
        leave_last_out(data)
