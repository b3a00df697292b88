"""Datasets (MovieLens, Last.fm, your own CSV, a synthetic demo) and train/test splits.

Every loader returns :class:`mlrec.core.Interactions` with the dataset's own ids as
strings and titles/categories in ``item_info``; a malformed row raises
:class:`mlrec.core.DataFormatError` naming the file, the line and the problem.

Example:
    >>> from mlrec.data import load_dataset, random_split_per_user
    >>> train, test = random_split_per_user(load_dataset("demo"), test_ratio=0.25, seed=42)
    >>> train.items is test.items
    True
"""

from mlrec.data.csv_loader import load_csv
from mlrec.data.demo import DEMO_END, DEMO_GENRES, make_demo
from mlrec.data.download import ZipSource, download_zip
from mlrec.data.lastfm import load_lastfm, read_lastfm_artists
from mlrec.data.movielens import (
    ML100K_GENRES,
    load_movielens_100k,
    load_movielens_csv,
    read_movielens_100k_items,
    read_movielens_csv_items,
)
from mlrec.data.registry import (
    DATA_DIR_ENV,
    DATASET_NAMES,
    DATASETS,
    FORMATS,
    DatasetSpec,
    default_data_dir,
    find_dataset,
    load_dataset,
    load_interactions,
)
from mlrec.data.splits import (
    filter_test_to_train,
    leave_last_out,
    movielens_100k_fold,
    random_split_per_user,
    stratified_split,
    time_split,
)

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "DATA_DIR_ENV",
    "DEMO_END",
    "DEMO_GENRES",
    "FORMATS",
    "ML100K_GENRES",
    "DatasetSpec",
    "ZipSource",
    "default_data_dir",
    "download_zip",
    "filter_test_to_train",
    "find_dataset",
    "leave_last_out",
    "load_csv",
    "load_dataset",
    "load_interactions",
    "load_lastfm",
    "load_movielens_100k",
    "load_movielens_csv",
    "make_demo",
    "movielens_100k_fold",
    "random_split_per_user",
    "read_lastfm_artists",
    "read_movielens_100k_items",
    "read_movielens_csv_items",
    "stratified_split",
    "time_split",
]
