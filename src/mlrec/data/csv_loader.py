"""Any CSV of ``user_id,item_id[,weight][,timestamp]`` rows, for your own data.

Ids are kept as strings (surrounding spaces removed). The header row is optional:
line 1 is a header only when every cell is a known column name (``user_id``,
``item``, ``rating``, ``timestamp``, ... in any case and order); such a header must
name the user and the item columns. Any other line 1 is data, checked like every
other line. Timestamps are Unix seconds or ISO 8601 datetimes.
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


_PRIMARY = {"user": "user_id", "item": "item_id", "weight": "weight", "timestamp": "timestamp"}


def _role(name: str) -> str | None:
    key = name.strip().lower()
    return next((role for role, names in _ROLES if key in names), None)


def _header_roles(fields: list[str]) -> list[str] | None:
    """The role of every cell of a header row, or ``None`` if a cell is no known name."""
    roles = [_role(field) for field in fields]
    if any(role is None for role in roles):
        return None
    return [role for role in roles if role is not None]


def _accepted(role: str) -> str:
    names = dict(_ROLES)[role]
    others = sorted(names - {_PRIMARY[role]})
    return f"{_PRIMARY[role]} (or {', '.join(others)})"


def _columns_from_header(table: Table, roles: list[str]) -> dict[str, int]:
    """Which column holds each role, from a header of known names (row 0 of ``table``)."""
    header = [field.strip() for field in table.rows[0]]
    columns: dict[str, int] = {}
    for i, role in enumerate(roles):
        if role in columns:
            raise table.error(
                0, f"{header[i]!r} repeats the {role} column (already {header[columns[role]]!r})"
            )
        columns[role] = i
    missing = [role for role in ("user", "item") if role not in columns]
    if missing:
        names = ", ".join(header)
        if len(missing) == 2:
            raise table.error(
                0,
                f"header has no user column and no item column (it names {names}); "
                f"call them {_accepted('user')} and {_accepted('item')}",
            )
        raise table.error(
            0,
            f"header has no {missing[0]} column (it names {names}); "
            f"call it {_accepted(missing[0])}",
        )
    return columns


def _not_a_header_hint(fields: list[str]) -> str | None:
    """Why a first line that names some columns was read as data (``None``: no hint)."""
    unknown = [field.strip() for field in fields if _role(field) is None]
    if len(unknown) == len(fields):
        return None
    quoted = ", ".join(repr(name) for name in unknown)
    verb = "is not a known column name" if len(unknown) == 1 else "are not known column names"
    return f"read as data, not as a header, because {quoted} {verb}"


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
        header: whether the first row is a header; ``None`` detects it: line 1 is a
            header when every cell is a known column name, else it is data. With
            ``True``, unknown names are read positionally.
        name: the dataset label (default: the file name without extension).

    Returns:
        The events; weights default to 1.0 and timestamps to 0 when the columns
        are absent. ``item_info`` is empty.

    Raises:
        DataError: the file is missing or has no rows.
        DataFormatError: a malformed row: wrong number of columns, empty id,
            non-numeric weight, unreadable timestamp; or a header naming no user
            or no item column, or one column twice (with its line number).

    Example:
        >>> data = load_csv("events.csv")  # doctest: +SKIP
        >>> data.users.id(int(data.user_idx[0]))  # doctest: +SKIP
        'alice'
    """
    file = require_file(Path(path).expanduser(), "CSV file")
    with no_gc():
        table = read_table(file, delimiter, quoted=True)
        if not table.rows:
            raise DataError(f"no interactions in {file}: it has no rows")
        first = table.rows[0]
        roles = _header_roles(first) if header is not False else None
        has_header = roles is not None if header is None else header
        columns = {role: i for i, (role, _) in enumerate(_ROLES)}
        n_columns, first_row_line = len(first), table.line(0)
        hint = None
        if has_header:
            if roles is not None:
                columns = _columns_from_header(table, roles)
            table = table.drop_first()
            if not table.rows:
                raise DataError(f"no interactions in {file}: it has a header but no rows")
        elif header is None:
            hint = _not_a_header_hint(first)
        try:
            return _read_events(table, columns, n_columns, first_row_line, delimiter).build(
                {}, name or file.stem
            )
        except DataFormatError as exc:
            if hint is None or exc.line != first_row_line:
                raise
            raise DataFormatError(exc.path, exc.line, f"{exc.problem} ({hint})") from None


def _read_events(
    table: Table, columns: dict[str, int], n_columns: int, first_row_line: int, delimiter: str
) -> RawEvents:
    if not 2 <= n_columns <= 4:
        raise DataFormatError(
            str(table.path),
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
    return RawEvents(users, items, weights, timestamps)
