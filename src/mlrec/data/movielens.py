"""MovieLens loaders: the 1998 ML-100K layout and the CSV layout of ml-latest(-small).

Ratings become event weights (1-5, or 0.5-5 in steps of 0.5 for the CSV layout);
user and movie ids stay the dataset's own, as strings. Titles and genres end up in
``Interactions.item_info``.

The data is research-only and ML-100K may not be redistributed: see
:mod:`mlrec.data.registry` for the licence terms, and never commit these files.
"""

from __future__ import annotations

from pathlib import Path

from mlrec.core.interactions import Interactions, ItemInfo
from mlrec.data._parse import (
    RawEvents,
    Table,
    first_line,
    locate,
    no_gc,
    parse_floats,
    parse_ints,
    read_events_fast,
    read_table,
    require_events,
    require_file,
    require_ids,
)

__all__ = [
    "ML100K_GENRES",
    "load_movielens_100k",
    "load_movielens_csv",
    "read_movielens_100k_items",
    "read_movielens_csv_items",
    "read_rating_events",
]

ML100K_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
"""The 19 genre flags at the end of each ``u.item`` row, in order (as in ``u.genre``)."""

_NO_GENRES = "(no genres listed)"


def _read_ratings(table: Table, sep: str) -> RawEvents:
    table.check_columns(4, sep=sep)
    users = table.column(0)
    items = table.column(1)
    require_ids(table, users, "user id")
    require_ids(table, items, "item id")
    ratings = parse_floats(table, table.column(2), "rating")
    timestamps = parse_ints(table, table.column(3), "timestamp")
    return RawEvents(users, items, ratings, timestamps)


def read_rating_events(
    path: Path, sep: str, *, header: str | None = None, quoted: bool = False
) -> RawEvents:
    """``user<sep>item<sep>rating<sep>timestamp`` rows, fast when ids are integers.

    Args:
        path: the ratings file (u.data, u1.base, ratings.csv, ...).
        sep: the field separator.
        header: the first field of a header row to skip if present (``"userId"``).
        quoted: honour CSV double quotes (``"1","31",2.5,...``, as a CSV writer
            quoting every field produces); the quotes are not part of the values.

    Raises:
        DataError: the file is missing or holds no ratings.
        DataFormatError: a malformed row, with its line number.
    """
    require_file(path, "MovieLens ratings file")
    first = first_line(path).split(sep)[0]
    if quoted and len(first) >= 2 and first[0] == first[-1] == '"':
        first = first[1:-1]
    skip = 1 if header is not None and first == header else 0
    fast = read_events_fast(path, sep, has_timestamp=True, skiprows=skip)
    if fast is not None:
        return require_events(fast, path)
    table = read_table(path, sep, quoted=quoted)
    if skip:
        table = table.drop_first()
    return require_events(_read_ratings(table, sep), path)


def _read_genre_names(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ML100K_GENRES
    table = read_table(path, "|", encoding="latin-1")
    table.check_columns(2, sep="|")
    names = table.column(0)
    positions = parse_ints(table, table.column(1), "genre index")
    ordered = [""] * len(names)
    for row, position in enumerate(positions):
        if not 0 <= position < len(names):
            raise table.error(row, f"genre index {position} is out of range 0..{len(names) - 1}")
        ordered[position] = names[row]
    return tuple(ordered)


def read_movielens_100k_items(directory: Path | str) -> dict[str, ItemInfo]:
    """Titles and genres from ``u.item`` (latin-1, ``|``-separated, 19 genre flags).

    Args:
        directory: the ML-100K folder; ``u.genre`` there names the flags if present.

    Returns:
        ``{movie id: ItemInfo(title, genres)}``.

    Raises:
        DataError: ``u.item`` is missing.
        DataFormatError: a row has too few fields or a flag that is not 0/1.
    """
    folder = Path(directory)
    genres = _read_genre_names(folder / "u.genre")
    table = read_table(
        require_file(folder / "u.item", "MovieLens 100K u.item"), "|", encoding="latin-1"
    )
    n_flags = len(genres)
    table.check_columns(2 + n_flags, at_least=True, sep="|")
    info: dict[str, ItemInfo] = {}
    for row, fields in enumerate(table.rows):
        item_id = fields[0].strip()
        if not item_id:
            raise table.error(row, "movie id is empty")
        flags = fields[-n_flags:]
        if any(flag not in ("0", "1") for flag in flags):
            raise table.error(row, f"genre flags must be 0 or 1, found {'|'.join(flags)!r}")
        categories = tuple(g for g, flag in zip(genres, flags, strict=True) if flag == "1")
        info[item_id] = ItemInfo(title=fields[1].strip(), categories=categories)
    return info


def load_movielens_100k(path: Path | str) -> Interactions:
    """Load MovieLens 100K from its folder or from one ratings file in ``u.data`` format.

    Args:
        path: the extracted ``ml-100k`` directory (its ``u.data`` is read), or any
            ``user<TAB>item<TAB>rating<TAB>timestamp`` file such as ``u.data``,
            ``u1.base`` or ``u1.test``; titles then come from ``u.item`` in the
            file's folder when it is there.

    Returns:
        The ratings as events whose weights are the 1-5 ratings, with Unix-second
        timestamps and titles/genres in ``item_info`` (empty if ``u.item`` is
        absent). ``u.data``: 100,000 events, 943 users, 1682 items. The name is
        ``ml-100k``, or ``ml-100k-<stem>`` for another file (``ml-100k-u1``).

    Raises:
        DataError: the path or ``u.data`` is missing, or the ratings file is empty.
        DataFormatError: a malformed row, with its line number.

    Example:
        >>> data = load_movielens_100k("~/.local/share/mlrec/ml-100k")  # doctest: +SKIP
        >>> len(data), data.n_users, data.n_items  # doctest: +SKIP
        (100000, 943, 1682)
    """
    ratings, directory = locate(path, "u.data", "MovieLens 100K")
    name = "ml-100k" if ratings.name == "u.data" else f"ml-100k-{ratings.stem}"
    with no_gc():
        events = read_rating_events(ratings, "\t")
        info = read_movielens_100k_items(directory) if (directory / "u.item").is_file() else {}
        return events.build(info, name)


def read_movielens_csv_items(path: Path | str) -> dict[str, ItemInfo]:
    """Titles and genres from a MovieLens ``movies.csv`` (``movieId,title,genres``).

    Titles may be double-quoted (they contain commas); genres are ``|``-separated and
    ``(no genres listed)`` becomes no categories.
    """
    table = read_table(require_file(Path(path), "MovieLens movies.csv"), ",", quoted=True)
    if table.rows and table.rows[0][:1] == ["movieId"]:
        table = table.drop_first()
    table.check_columns(3, sep=",")
    info: dict[str, ItemInfo] = {}
    for row, (movie_id, title, genres) in enumerate(table.rows):
        if not movie_id.strip():
            raise table.error(row, "movieId is empty")
        categories = () if genres in ("", _NO_GENRES) else tuple(genres.split("|"))
        info[movie_id.strip()] = ItemInfo(title=title.strip(), categories=categories)
    return info


def load_movielens_csv(path: Path | str) -> Interactions:
    """Load the CSV layout of ml-latest / ml-latest-small / ml-20m / ml-25m.

    Args:
        path: the directory holding ``ratings.csv`` (``userId,movieId,rating,timestamp``,
            header optional) and optionally ``movies.csv``; or a file in the
            ``ratings.csv`` format, with titles from ``movies.csv`` beside it when present.

    Returns:
        The ratings as events (ml-latest-small: 100,836 events, 610 users, 9,724
        rated movies), with titles and genres for every movie in ``movies.csv``.
        The name is the folder's (``ml-latest-small``), or the file's stem for a
        file not called ``ratings.csv``.

    Raises:
        DataError: the path or ``ratings.csv`` is missing, or the ratings file is empty.
        DataFormatError: a malformed row, with its line number.
    """
    ratings, directory = locate(path, "ratings.csv", "MovieLens CSV")
    name = (directory.name or "movielens") if ratings.name == "ratings.csv" else ratings.stem
    with no_gc():
        events = read_rating_events(ratings, ",", header="userId", quoted=True)
        movies = directory / "movies.csv"
        info = read_movielens_csv_items(movies) if movies.is_file() else {}
        return events.build(info, name)
