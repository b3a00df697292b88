"""The public API of mlrec.data is deliberate: pin it, and keep the layering."""

from __future__ import annotations

import ast
from pathlib import Path

import mlrec.data

EXPECTED = {
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
}


def test_data_package_exports_exactly_the_public_api() -> None:
    assert set(mlrec.data.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(mlrec.data, name) is not None


def test_data_modules_import_only_core_from_mlrec() -> None:
    package = Path(mlrec.data.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("mlrec."):
                    assert name.startswith(("mlrec.core", "mlrec.data")), (module.name, name)
