"""Any CSV of ``user_id,item_id[,weight][,timestamp]`` rows, for your own data.

Ids are kept as strings (surrounding spaces removed). The header row is optional
and detected; when it names the columns (``user_id``, ``item``, ``rating``,
``timestamp``, ...) they may come in any order. Timestamps are Unix seconds or
ISO 8601 datetimes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlrec.core.errors import DataError, DataFormatError
from mlrec.core.interactions import Interactions
from mlrec.data._parse import (
    RawEvents,
    Table,
    no_gc,
    parse_floats,
    parse_timestamps,
    read_table,
    require_file,
    require_ids,
)

__all__ = ["load_csv"]

_USER_NAMES = frozenset({"user", "user_id", "userid", "uid", "user id", "customer_id", "visitorid"})
_ITEM_NAMES = frozenset(
    {
        "item",
        "item_id",
        "itemid",
        "iid",
        "item id",
        "movie",
        "movie_id",
        "movieid",
        "artist",
        "artist_id",
        "artistid",
        "product",
        "product_id",
    }
)
_WEIGHT_NAMES = frozenset(
    {"weight", "rating", "score", "value", "count", "plays", "playcount", "play_count", "strength"}
)
_TIME_NAMES = frozenset(
    {"timestamp", "time", "ts", "datetime", "date", "unix_timestamp", "event_time"}
)
_ROLES = (
    ("user", _USER_NAMES),
    ("item", _ITEM_NAMES),
    ("weight", _WEIGHT_NAMES),
    ("timestamp", _TIME_NAMES),
)


def _role(name: str) -> str | None:
    key = name.strip().lower()
    return next((role for role, names in _ROLES if key in names), None)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _looks_like_header(table: Table) -> bool:
    first = table.rows[0]
    roles = [_role(field) for field in first]
    if "user" in roles and "item" in roles:
        return True
    if len(first) >= 3 and not _is_number(first[2]):
        # A weight column whose first value is a word, while the next row has a number.
        return len(table.rows) < 2 or (len(table.rows[1]) >= 3 and _is_number(table.rows[1][2]))
    return False


def _columns_from_header(header: list[str]) -> dict[str, int]:
    roles = [_role(field) for field in header]
    named = {role: i for i, role in enumerate(roles) if role is not None}
    if len(named) == len(header) and {"user", "item"} <= named.keys():
        return named
    return {role: i for i, (role, _) in enumerate(_ROLES[: len(header)])}


def load_csv(
    path: Path | str,
    *,
    delimiter: str = ",",
    header: bool | None = None,
    name: str | None = None,
) -> Interactions:
    """Load interactions from a CSV of ``user_id,item_id[,weight][,timestamp]``.

    Args:
        path: the CSV file.
        delimiter: the field separator (``","``; ``"\\t"`` for TSV).
        header: whether the first row is a header; ``None`` detects it (a first row
            naming the user and item columns, or a non-numeric weight).
        name: the dataset label (default: the file name without extension).

    Returns:
        The events; weights default to 1.0 and timestamps to 0 when the columns
        are absent. ``item_info`` is empty.

    Raises:
        DataError: the file is missing or has no rows.
        DataFormatError: a malformed row: wrong number of columns, empty id,
            non-numeric weight, unreadable timestamp (with its line number).

    Example:
        >>> data = load_csv("events.csv")  # doctest: +SKIP
        >>> data.users.id(int(data.user_idx[0]))  # doctest: +SKIP
        'alice'
    """
    file = require_file(Path(path).expanduser(), "CSV file")
    with no_gc():
        table = read_table(file, delimiter, quoted=True)
        if not table.rows:
            raise DataError(f"{file} contains no rows")
        has_header = _looks_like_header(table) if header is None else header
        columns = {role: i for i, (role, _) in enumerate(_ROLES)}
        n_columns, first_row_line = len(table.rows[0]), table.line(0)
        if has_header:
            columns = _columns_from_header(table.rows[0])
            table = table.drop_first()
            if not table.rows:
                raise DataError(f"{file} has a header but no rows")
        if not 2 <= n_columns <= 4:
            raise DataFormatError(
                str(file),
                first_row_line,
                f"expected 2 to 4 columns (user_id,item_id[,weight][,timestamp]) "
                f"separated by {delimiter!r}, found {n_columns}",
            )
        table.check_columns(n_columns, sep=delimiter)
        users = table.column(columns["user"], strip=True)
        items = table.column(columns["item"], strip=True)
        require_ids(table, users, "user id")
        require_ids(table, items, "item id")
        n = len(users)
        weights = (
            parse_floats(table, table.column(columns["weight"]), "weight")
            if "weight" in columns and columns["weight"] < n_columns
            else np.ones(n, dtype=np.float32)
        )
        timestamps = (
            parse_timestamps(table, table.column(columns["timestamp"]), "timestamp")
            if "timestamp" in columns and columns["timestamp"] < n_columns
            else np.zeros(n, dtype=np.int64)
        )
        return RawEvents(users, items, weights, timestamps).build({}, name or file.stem)
