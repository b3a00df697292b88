"""Train/test splits: every function returns ``(train, test)`` over the same id maps.

All splits are deterministic: the random ones take a ``seed``, the time-based ones
break timestamp ties by row order. They are vectorised (one sort over all rows,
no per-user Python loop).

Which one to use:

* :func:`random_split_per_user` - protocol A of Microsoft Recommenders
  (``python_stratified_split``, ratio 0.75): each user's events, shuffled, 25% to test.
* :func:`stratified_split` with ``by="item"`` - the same, stratified per item (the
  setting of the Recommenders ML-100K benchmark notebook).
* :func:`leave_last_out` - each user's latest ``n`` events to test (next-item tasks).
* :func:`time_split` - one global cut in time; no training event is later than a test event.
* :func:`movielens_100k_fold` - the official ``u1``..``u5``, ``ua``, ``ub`` folds.
* :func:`filter_test_to_train` - drop test events of users or items unseen in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from mlrec.core.errors import DataError, ValidationError
from mlrec.core.interactions import Interactions
from mlrec.data._parse import no_gc
from mlrec.data.movielens import read_movielens_100k_items, read_rating_events

__all__ = [
    "filter_test_to_train",
    "leave_last_out",
    "movielens_100k_fold",
    "random_split_per_user",
    "stratified_split",
    "time_split",
]

Split = tuple[Interactions, Interactions]
_FOLDS = ("1", "2", "3", "4", "5", "a", "b")


def _check_ratio(test_ratio: float) -> None:
    if not 0.0 < test_ratio < 1.0:
        raise ValidationError(f"test_ratio must be between 0 and 1 (exclusive), got {test_ratio}")


def _require_timestamps(interactions: Interactions, method: str) -> None:
    """Refuse a time-based split of events that carry no timestamps (all equal).

    Last.fm and CSV files without a timestamp column have every event at 0: "the
    latest events" mean nothing there, and a global cut would put every event in test.
    """
    stamps = interactions.timestamps
    if len(stamps) > 1 and int(stamps.min()) == int(stamps.max()):
        raise ValidationError(
            f"{method} needs timestamps, but all {len(stamps)} events of "
            f"{interactions.name or 'the data'} share one timestamp ({int(stamps.min())}): "
            "the data has none; use a random split"
        )


def _split(interactions: Interactions, test: npt.NDArray[np.bool_]) -> Split:
    return interactions.subset(~test), interactions.subset(test)


def _group_ranks(
    groups: npt.NDArray[np.int64], order: npt.NDArray[np.int64], n_groups: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For rows sorted by ``order`` (grouped), each row's position within its group.

    Returns ``(rank, counts)``: ``rank[k]`` belongs to row ``order[k]``, and
    ``counts[g]`` is the size of group ``g``.
    """
    counts = np.bincount(groups, minlength=n_groups).astype(np.int64)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(order), dtype=np.int64) - starts[groups[order]]
    return rank, counts


def stratified_split(
    interactions: Interactions,
    test_ratio: float = 0.25,
    seed: int = 42,
    *,
    by: Literal["user", "item"] = "user",
) -> Split:
    """Per user (or per item), a random ``round(n * test_ratio)`` of its events go to test.

    A group keeps at least one event in train, so a user with a single event keeps
    it there. ``round`` is Python's (half to even): for ``test_ratio=0.25`` this is
    exactly the train size ``round(0.75 * n)`` of Microsoft Recommenders'
    ``python_stratified_split``. The rows picked differ from theirs (other RNG).

    Args:
        interactions: the events to split.
        test_ratio: fraction of each group's events to put in test, in (0, 1).
        seed: seed of the shuffle; the same seed and input give the same split.
        by: stratify per ``"user"`` or per ``"item"``.

    Returns:
        ``(train, test)`` sharing ``interactions``' id maps, disjoint, covering all rows.
    """
    _check_ratio(test_ratio)
    if by not in ("user", "item"):
        raise ValidationError(f"by must be 'user' or 'item', got {by!r}")
    groups = interactions.user_idx if by == "user" else interactions.item_idx
    n_groups = interactions.n_users if by == "user" else interactions.n_items
    keys = np.random.default_rng(seed).random(len(interactions))
    order = np.lexsort((keys, groups))
    rank, counts = _group_ranks(groups, order, n_groups)
    n_test = np.minimum(np.rint(counts * test_ratio).astype(np.int64), counts - 1)
    test = np.zeros(len(interactions), dtype=bool)
    test[order] = rank < n_test[groups[order]]
    return _split(interactions, test)


def random_split_per_user(
    interactions: Interactions, test_ratio: float = 0.25, seed: int = 42
) -> Split:
    """Per user, a random ``round(n * test_ratio)`` of their events go to test.

    This is protocol A of Microsoft Recommenders (``python_stratified_split`` by
    user, ratio 0.75). See :func:`stratified_split` for the details.

    Example:
        >>> from mlrec.data.demo import make_demo
        >>> train, test = random_split_per_user(make_demo(n_users=50, n_items=40))
        >>> train.users is test.users
        True
    """
    return stratified_split(interactions, test_ratio, seed, by="user")


def leave_last_out(interactions: Interactions, n: int = 1) -> Split:
    """Per user, the latest ``n`` events (by timestamp) go to test.

    Ties in time are broken by row order (a later row counts as later). A user
    keeps at least one event in train, so users with ``n`` events or fewer
    contribute ``count - 1`` test events.

    Args:
        interactions: the events to split.
        n: how many of each user's latest events to hold out (>= 1).

    Raises:
        ValidationError: ``n < 1``, or the events have no timestamps (all equal).
    """
    if n < 1:
        raise ValidationError(f"n must be at least 1, got {n}")
    _require_timestamps(interactions, "a leave-last-out split")
    rows = np.arange(len(interactions), dtype=np.int64)
    order = np.lexsort((rows, interactions.timestamps, interactions.user_idx))
    rank, counts = _group_ranks(interactions.user_idx, order, interactions.n_users)
    users = interactions.user_idx[order]
    from_end = counts[users] - 1 - rank
    n_test = np.minimum(n, counts - 1)
    test = np.zeros(len(interactions), dtype=bool)
    test[order] = from_end < n_test[users]
    return _split(interactions, test)


def time_split(interactions: Interactions, test_ratio: float = 0.2) -> Split:
    """One global cut in time: the latest ``test_ratio`` of events go to test.

    The cut is the timestamp of the first test event in time order; every event at
    or after it goes to test, so no training event is later than any test event.
    With ties at the cut the test share can be slightly above ``test_ratio``.

    Raises:
        ValidationError: a bad ``test_ratio``; the events have no timestamps (all
            equal); or the cut falls among events tied with the earliest timestamp,
            which would leave nothing to train on.
    """
    _check_ratio(test_ratio)
    if len(interactions) == 0:
        return _split(interactions, np.zeros(0, dtype=bool))
    _require_timestamps(interactions, "a time split")
    order = np.argsort(interactions.timestamps, kind="stable")
    n_train = len(interactions) - round(len(interactions) * test_ratio)
    if n_train >= len(interactions):
        return _split(interactions, np.zeros(len(interactions), dtype=bool))
    cut = interactions.timestamps[order[n_train]]
    if cut == interactions.timestamps[order[0]]:
        tied = int(np.count_nonzero(interactions.timestamps == cut))
        raise ValidationError(
            f"a time split cannot hold out {test_ratio:g} of the events: {tied} of "
            f"{len(interactions)} share the earliest timestamp ({int(cut)}), so every event "
            "would go to test; use a smaller ratio or a random split"
        )
    return _split(interactions, interactions.timestamps >= cut)


def filter_test_to_train(train: Interactions, test: Interactions) -> Split:
    """``(train, test)`` where test keeps only users and items that occur in train.

    Cold users and items cannot be scored by collaborative models; evaluate them
    separately if they matter.
    """
    if train.users is not test.users and train.users != test.users:
        raise ValidationError("train and test must share the same user id map")
    if train.items is not test.items and train.items != test.items:
        raise ValidationError("train and test must share the same item id map")
    seen_users = np.zeros(train.n_users, dtype=bool)
    seen_users[train.user_idx] = True
    seen_items = np.zeros(train.n_items, dtype=bool)
    seen_items[train.item_idx] = True
    keep = seen_users[test.user_idx] & seen_items[test.item_idx]
    return train, test.subset(keep)


def movielens_100k_fold(path: Path | str, fold: int | str) -> Split:
    """The official ML-100K split ``u{fold}.base`` / ``u{fold}.test``.

    Folds 1-5 are the 80/20 five-fold cross-validation; ``"a"`` and ``"b"`` hold out
    exactly 10 ratings per user. Train and test share id maps built from the base
    rows then the test rows, and ``item_info`` comes from ``u.item`` when present.

    Args:
        path: the ``ml-100k`` directory.
        fold: 1..5, ``"a"`` or ``"b"``.

    Raises:
        ValidationError: an unknown fold.
        DataError, DataFormatError: missing or malformed files.
    """
    key = str(fold).lower()
    if key not in _FOLDS:
        raise ValidationError(f"fold must be one of 1-5, 'a' or 'b', got {fold!r}")
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise DataError(f"MovieLens 100K directory not found: {directory}")
    with no_gc():
        base = read_rating_events(directory / f"u{key}.base", "\t")
        held_out = read_rating_events(directory / f"u{key}.test", "\t")
        info = read_movielens_100k_items(directory) if (directory / "u.item").is_file() else {}
        both = base.concat(held_out).build(info, f"ml-100k-u{key}")
    test = np.arange(len(both)) >= len(base)
    return _split(both, test)
