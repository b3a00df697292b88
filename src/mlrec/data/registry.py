"""Datasets by name: where they live on disk, how to load them, how to get them.

``load_dataset("ml-100k")`` looks for ``<data_dir>/ml-100k/`` (or one of the
dataset's other usual folder names), where ``data_dir`` is the argument, else
``$MLREC_DATA_DIR``, else ``~/.local/share/mlrec`` (the same default as
``CommonSettings.data_dir``). ``demo`` is generated and needs no files.

None of the real datasets is permissively licensed: MovieLens is for research
only, Last.fm HetRec for non-commercial use. They are downloaded to the user's
machine on request, never shipped or committed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from mlrec.core.errors import DataError, NotFoundError, ValidationError
from mlrec.core.interactions import Interactions
from mlrec.data.csv_loader import load_csv
from mlrec.data.demo import make_demo
from mlrec.data.download import Opener, Progress, ZipSource, download_zip
from mlrec.data.lastfm import load_lastfm
from mlrec.data.movielens import load_movielens_100k, load_movielens_csv

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "DATA_DIR_ENV",
    "FORMATS",
    "DatasetSpec",
    "default_data_dir",
    "find_dataset",
    "load_dataset",
    "load_interactions",
]

DATA_DIR_ENV = "MLREC_DATA_DIR"
"""Environment variable naming the datasets directory."""

_MOVIELENS_CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and "
    "Context. ACM Transactions on Interactive Intelligent Systems (TiiS) 5, 4, Article 19. "
    "https://doi.org/10.1145/2827872"
)

_ML100K_LICENCE = f"""\
MovieLens 100K is provided by GroupLens Research (University of Minnesota) under these terms:
  * research use only; no commercial or revenue-bearing use without permission from GroupLens;
  * you may NOT redistribute the data without separate permission (do not commit it);
  * do not state or imply endorsement by the University of Minnesota or GroupLens;
  * acknowledge it in publications by citing:
    {_MOVIELENS_CITATION}
Full terms: https://files.grouplens.org/datasets/movielens/ml-100k-README.txt"""

_MLSMALL_LICENCE = f"""\
MovieLens ml-latest-small is provided by GroupLens Research (University of Minnesota):
  * research use only; no commercial or revenue-bearing use without permission from GroupLens;
  * redistribution only under these same licence conditions;
  * do not state or imply endorsement by the University of Minnesota or GroupLens;
  * acknowledge it in publications by citing:
    {_MOVIELENS_CITATION}
  * it is a development dataset that may change over time (not for shared research results).
Full terms: https://files.grouplens.org/datasets/movielens/ml-latest-small-README.html"""

_LASTFM_LICENCE = """\
Last.fm HetRec 2011 (hetrec2011-lastfm-2k) is made available for non-commercial use only;
for commercial use contact Last.fm. Cite: Cantador, Brusilovsky, Kuflik. HetRec 2011."""


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset.

    Attributes:
        name: the name given to :func:`load_dataset`.
        description: one line for listings.
        folders: folder names searched under the data directory, preferred first.
        required: files that must be present in the folder.
        loader: reads the folder into :class:`Interactions`.
        licence: the terms, printed before a download.
        homepage: where a person can read about it and fetch it by hand.
        source: the zip to download, or ``None`` if it must be fetched by hand.
    """

    name: str
    description: str
    folders: tuple[str, ...]
    required: tuple[str, ...]
    loader: Callable[[Path], Interactions]
    licence: str
    homepage: str
    source: ZipSource | None = None


_SPECS = (
    DatasetSpec(
        name="ml-100k",
        description="MovieLens 100K: 100,000 ratings (1-5) by 943 users on 1,682 movies (1998)",
        folders=("ml-100k",),
        required=("u.data", "u.item"),
        loader=load_movielens_100k,
        licence=_ML100K_LICENCE,
        homepage="https://grouplens.org/datasets/movielens/100k/",
        source=ZipSource(
            url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
            folder="ml-100k",
            required=("u.data", "u.item", "u.genre"),
            md5="0e33842e24a9c977be4e0107933c0723",
            member_sha256={
                "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            },
        ),
    ),
    DatasetSpec(
        name="ml-latest-small",
        description="MovieLens latest-small: 100,836 ratings (0.5-5) by 610 users, 9,742 movies",
        folders=("ml-latest-small",),
        required=("ratings.csv",),
        loader=load_movielens_csv,
        licence=_MLSMALL_LICENCE,
        homepage="https://grouplens.org/datasets/movielens/latest/",
        # Not pinned: GroupLens may regenerate this development dataset. The zip is
        # still checked for CRC errors, unsafe names and the expected files.
        source=ZipSource(
            url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
            folder="ml-latest-small",
            required=("ratings.csv", "movies.csv"),
        ),
    ),
    DatasetSpec(
        name="lastfm",
        description="Last.fm HetRec 2011: 92,834 artist play counts by 1,892 users, 17,632 artists",
        folders=("lastfm", "lastfm-hetrec2011-2k", "hetrec2011-lastfm-2k"),
        required=("user_artists.dat",),
        loader=load_lastfm,
        licence=_LASTFM_LICENCE,
        homepage="https://grouplens.org/datasets/hetrec-2011/",
    ),
)

DATASETS: Mapping[str, DatasetSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})
"""The file-based datasets by name (``demo`` is generated, so it is not here)."""

DATASET_NAMES: tuple[str, ...] = ("demo", *DATASETS)
"""Every name :func:`load_dataset` accepts."""

FORMATS: tuple[str, ...] = ("movielens-100k", "movielens-csv", "lastfm", "csv")
"""Every format :func:`load_interactions` accepts."""

_LOADERS: Mapping[str, Callable[[Path], Interactions]] = {
    "movielens-100k": load_movielens_100k,
    "movielens-csv": load_movielens_csv,
    "lastfm": load_lastfm,
    "csv": load_csv,
}


def default_data_dir() -> Path:
    """``$MLREC_DATA_DIR`` if set, else ``~/.local/share/mlrec``."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".local" / "share" / "mlrec"


def _spec(name: str) -> DatasetSpec:
    for spec in DATASETS.values():
        if name == spec.name or name in spec.folders:
            return spec
    raise NotFoundError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")


def _complete(folder: Path, spec: DatasetSpec) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in spec.required)


def find_dataset(name: str, data_dir: Path | None = None) -> Path | None:
    """The folder holding dataset ``name`` under ``data_dir``, or ``None``.

    A folder counts only if it has all of the dataset's required files.
    """
    spec = _spec(name)
    root = data_dir if data_dir is not None else default_data_dir()
    for folder_name in spec.folders:
        folder = root / folder_name
        if _complete(folder, spec):
            return folder
    return None


def _missing_message(spec: DatasetSpec, root: Path) -> str:
    looked = ", ".join(str(root / f) for f in spec.folders)
    target = root / spec.folders[0]
    lines = [
        f"dataset {spec.name!r} not found: looked for {', '.join(spec.required)} in {looked}.",
    ]
    if spec.source is not None:
        lines.append(
            f"Download it with load_dataset({spec.name!r}, download=True), or fetch "
            f"{spec.source.url} yourself and extract it so that {target / spec.required[0]} "
            "exists."
        )
    else:
        lines.append(
            f"Download it by hand from {spec.homepage} and extract it so that "
            f"{target / spec.required[0]} exists."
        )
    lines.append(f"Use data_dir=... or set {DATA_DIR_ENV} to look elsewhere.")
    return " ".join(lines)


def load_dataset(
    name: str,
    data_dir: Path | None = None,
    download: bool = False,
    *,
    opener: Opener | None = None,
    progress: Progress | None = None,
) -> Interactions:
    """Load a dataset by name, downloading it first if allowed.

    Args:
        name: ``demo``, ``ml-100k``, ``ml-latest-small`` or ``lastfm`` (a dataset's
            folder names, such as ``lastfm-hetrec2011-2k``, work too).
        data_dir: the datasets directory (default: :func:`default_data_dir`).
        download: fetch a missing MovieLens dataset from GroupLens (the licence is
            printed first), verify it and extract it into ``data_dir``.
        opener: replaces :func:`urllib.request.urlopen` for the download.
        progress: told the bytes received while downloading (see
            :data:`~mlrec.data.download.Progress`).

    Returns:
        The interactions, named after the dataset.

    Raises:
        NotFoundError: an unknown name.
        DataError: the dataset is missing (the message says where it looked and how
            to get it), or its download failed verification.
        DataFormatError: a malformed file.

    Example:
        >>> demo = load_dataset("demo")
        >>> demo.name, demo.n_users
        ('demo', 1000)
    """
    if name == "demo":
        return make_demo()
    spec = _spec(name)
    root = data_dir if data_dir is not None else default_data_dir()
    folder = find_dataset(spec.name, root)
    if folder is None:
        if not download or spec.source is None:
            raise DataError(_missing_message(spec, root))
        folder = download_zip(
            spec.source,
            root / spec.folders[0],
            licence=spec.licence,
            opener=opener,
            progress=progress,
        )
    data = spec.loader(folder)
    return data if data.name == spec.name else _renamed(data, spec.name)


def _renamed(data: Interactions, name: str) -> Interactions:
    return Interactions(
        data.users,
        data.items,
        data.user_idx,
        data.item_idx,
        data.weights,
        data.timestamps,
        data.item_info,
        name,
    )


def load_interactions(path: Path | str, format: str) -> Interactions:
    """Load interactions from a path in a named format (what the CLI calls).

    Args:
        path: for ``movielens-100k``, ``movielens-csv`` and ``lastfm``, the dataset's
            directory or one ratings file in its format (``u.data``/``u1.base``/
            ``u1.test``, ``ratings.csv``, ``user_artists.dat``; titles come from the
            usual side file beside it when present); a file for ``csv``.
        format: one of :data:`FORMATS`.

    Raises:
        ValidationError: an unknown format.
        DataError, DataFormatError: missing, empty or malformed data.
    """
    loader = _LOADERS.get(format)
    if loader is None:
        raise ValidationError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    return loader(Path(path).expanduser())
