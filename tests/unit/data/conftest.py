"""Fixtures for the dataset tests: where the real (never committed) datasets live.

The files are read from ``$MLREC_TEST_DATASETS``, by default ``<repo>/../shared/datasets``.
Without them the tests that need them are skipped locally but *fail* under CI, so a
green CI run always means the loaders ran on the real files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT = Path(__file__).resolve().parents[3].parent / "shared" / "datasets"


def _datasets_root() -> Path:
    configured = os.environ.get("MLREC_TEST_DATASETS", "").strip()
    return Path(configured) if configured else _DEFAULT


def _dataset(folder: str, marker_file: str) -> Path:
    path = _datasets_root() / folder
    if (path / marker_file).is_file():
        return path
    message = f"{path / marker_file} not found: set MLREC_TEST_DATASETS to the datasets folder"
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """The folder holding ml-100k/, ml-latest-small/ and lastfm-hetrec2011-2k/."""
    _dataset("ml-100k", "u.data")
    return _datasets_root()


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The real MovieLens 100K folder."""
    return _dataset("ml-100k", "u.data")


@pytest.fixture(scope="session")
def ml_small_dir() -> Path:
    """The real ml-latest-small folder."""
    return _dataset("ml-latest-small", "ratings.csv")


@pytest.fixture(scope="session")
def lastfm_dir() -> Path:
    """The real Last.fm HetRec 2011 folder."""
    return _dataset("lastfm-hetrec2011-2k", "user_artists.dat")
