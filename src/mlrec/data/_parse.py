"""Fast, strict parsing of delimited text files into columns.

Every loader goes through here so they share one behaviour: the happy path is
vectorised (one ``split`` per line, one ``map`` per column), and only when that
fails do we walk the column again to find the first bad value and report its
1-based line number in a :class:`~mlrec.core.errors.DataFormatError`.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mlrec.core.errors import DataError, DataFormatError
from mlrec.core.ids import IdMap
from mlrec.core.interactions import Interactions, ItemInfo

__all__ = [
    "FLOAT32_MAX",
    "Ids",
    "RawEvents",
    "Table",
    "first_line",
    "index_ids",
    "index_int_ids",
    "integers_are_canonical",
    "locate",
    "no_gc",
    "parse_floats",
    "parse_ints",
    "parse_timestamps",
    "read_events_fast",
    "read_table",
    "read_text",
    "require_events",
    "require_file",
    "require_ids",
]


FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest weight magnitude kept: weights are stored as float32."""


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector (usable as a decorator)."""
    # Parsing creates ~10^5 small lists that all survive; the cyclic collector
    # would rescan them repeatedly and triple the load time for no benefit.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a readable file, else a :class:`DataError` naming ``what``."""
    if not path.is_file():
        raise DataError(f"{what} not found: {path} does not exist or is not a file")
    return path


def locate(path: Path | str, default_file: str, what: str) -> tuple[Path, Path]:
    """The ratings file and the folder around it, given either of them.

    Args:
        path: a folder holding ``default_file``, or a file in that file's format.
        default_file: the ratings file's usual name (``u.data``, ``ratings.csv``, ...).
        what: the format's name in the message (``MovieLens 100K``).

    Returns:
        ``(ratings file, folder)``: for a folder, ``folder / default_file`` (not
        checked here: the caller reports it missing); for a file, the file and its
        parent, where side files such as titles are looked for.

    Raises:
        DataError: ``path`` is neither a folder nor a file.
    """
    target = Path(path).expanduser()
    if target.is_dir():
        return target / default_file, target
    if target.is_file():
        return target, target.parent
    raise DataError(f"{what} file or directory not found: {target}")


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The file's text with ``\\r\\n`` turned into ``\\n``.

    Raises:
        DataError: the file cannot be read.
        DataFormatError: the bytes are not valid ``encoding``, with the line.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataFormatError(
            str(path), line, f"bytes are not valid {encoding} text ({exc.reason})"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass
class Table:
    """Rows of string fields, with the 1-based line number of each row.

    Attributes:
        path: the file the rows came from (for error messages).
        rows: the fields of each non-blank row.
        lines: ``lines[i]`` is the line number of ``rows[i]``.
    """

    path: Path
    rows: list[list[str]]
    lines: npt.NDArray[np.int64]

    def line(self, row: int) -> int:
        """The 1-based line number of row ``row``."""
        return int(self.lines[row])

    def error(self, row: int, problem: str) -> DataFormatError:
        """A :class:`DataFormatError` about row ``row``."""
        return DataFormatError(str(self.path), self.line(row), problem)

    def drop_first(self) -> Table:
        """The table without its first row (a header)."""
        return Table(self.path, self.rows[1:], self.lines[1:])

    def check_columns(self, expected: int, *, at_least: bool = False, sep: str = ",") -> None:
        """Raise on the first row whose number of fields is wrong.

        Args:
            expected: the number of fields every row must have.
            at_least: accept rows with more fields than ``expected``.
            sep: the separator, named in the message.
        """
        if not self.rows:
            return
        counts = np.fromiter(map(len, self.rows), np.int64, len(self.rows))
        bad = np.flatnonzero(counts < expected if at_least else counts != expected)
        if len(bad):
            row = int(bad[0])
            want = f"at least {expected}" if at_least else str(expected)
            raise self.error(
                row,
                f"expected {want} columns separated by {sep!r}, found {counts[row]}",
            )

    def column(self, index: int, *, strip: bool = False) -> list[str]:
        """Field ``index`` of every row (rows must have been checked first)."""
        with no_gc():
            col = [row[index] for row in self.rows]
            if strip:
                col = [value.strip() for value in col]
        return col


def read_table(path: Path, sep: str, *, encoding: str = "utf-8", quoted: bool = False) -> Table:
    """Split a delimited file into rows, skipping blank lines.

    Args:
        path: the file.
        sep: the field separator (``"\\t"``, ``","``, ``"|"``).
        encoding: text encoding of the file.
        quoted: honour CSV double quotes (a field may then contain ``sep``).

    Raises:
        DataError, DataFormatError: unreadable file, bad encoding, broken quoting.
    """
    text = read_text(path, encoding)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    with no_gc():
        if quoted and '"' in text:
            return _read_quoted(path, lines, sep)
        rows = [line.split(sep) for line in lines]
    numbers = np.arange(1, len(rows) + 1, dtype=np.int64)
    blank = [i for i, line in enumerate(lines) if not line or line.isspace()]
    if blank:
        keep = np.ones(len(rows), dtype=bool)
        keep[blank] = False
        blank_set = set(blank)
        rows = [row for i, row in enumerate(rows) if i not in blank_set]
        numbers = numbers[keep]
    return Table(path, rows, numbers)


def _read_quoted(path: Path, lines: list[str], sep: str) -> Table:
    reader = csv.reader(lines, delimiter=sep, strict=True, skipinitialspace=True)
    rows: list[list[str]] = []
    numbers: list[int] = []
    start = 1
    try:
        for record in reader:
            if record and not (len(record) == 1 and not record[0].strip()):
                rows.append(record)
                numbers.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataFormatError(
            str(path), reader.line_num or start, f"bad CSV quoting: {exc}"
        ) from None
    return Table(path, rows, np.asarray(numbers, dtype=np.int64))


def _first_failure(values: Sequence[str], convert: Callable[[str], object]) -> int:
    for i, value in enumerate(values):
        try:
            convert(value)
        except (ValueError, OverflowError):
            return i
    return -1


def parse_floats(table: Table, values: Sequence[str], what: str) -> npt.NDArray[np.float32]:
    """Parse a column of numbers; a non-numeric or non-finite value is reported.

    Args:
        table: where the column came from (for line numbers).
        values: the column's strings.
        what: the column's name in messages ("rating", "weight", ...).
    """
    try:
        with no_gc():
            parsed = np.fromiter(map(float, values), np.float64, len(values))
    except (ValueError, OverflowError):
        row = _first_failure(values, float)
        raise table.error(row, f"{what} {values[row]!r} is not a number") from None
    bad = np.flatnonzero(~np.isfinite(parsed))
    if len(bad):
        row = int(bad[0])
        raise table.error(row, f"{what} {values[row]!r} is not a finite number")
    # checked before the cast: float32 would turn these into inf
    bad = np.flatnonzero(np.abs(parsed) > FLOAT32_MAX)
    if len(bad):
        row = int(bad[0])
        raise table.error(
            row, f"{what} {values[row]!r} is out of range (at most {FLOAT32_MAX:.4g} in size)"
        )
    return parsed.astype(np.float32)


def parse_ints(table: Table, values: Sequence[str], what: str) -> npt.NDArray[np.int64]:
    """Parse a column of integers (e.g. Unix timestamps), reporting the first bad one."""
    try:
        with no_gc():
            return np.fromiter(map(int, values), np.int64, len(values))
    except (ValueError, OverflowError):
        row = _first_failure(values, _int64)
        raise table.error(row, f"{what} {values[row]!r} is not an integer") from None


def _int64(value: str) -> int:
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise OverflowError(value)
    return number


def _timestamp(value: str) -> int:
    try:
        return _int64(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        moment = datetime.fromisoformat(value.strip())
        return int(moment.timestamp())
    if not np.isfinite(number):
        raise ValueError(value)
    return int(number)


def parse_timestamps(table: Table, values: Sequence[str], what: str) -> npt.NDArray[np.int64]:
    """Parse timestamps: Unix seconds (integer or decimal) or ISO 8601 datetimes.

    Naive ISO datetimes are read in the local time zone (as :mod:`datetime` does);
    give an offset (``2024-01-01T00:00:00+00:00``) to be unambiguous.
    """
    try:
        with no_gc():
            return np.fromiter(map(int, values), np.int64, len(values))
    except (ValueError, OverflowError):
        pass
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        try:
            out[i] = _timestamp(value)
        except (ValueError, OverflowError):
            raise table.error(
                i, f"{what} {value!r} is neither Unix seconds nor an ISO 8601 datetime"
            ) from None
    return out


def require_ids(table: Table, values: Sequence[str], what: str) -> None:
    """Raise on the first empty (or all-blank) id in ``values``."""
    if not values:
        return
    with no_gc():
        blank = min(map(len, values)) == 0 or any(map(str.isspace, values))
    if blank:
        row = next(i for i, v in enumerate(values) if not v.strip())
        raise table.error(row, f"{what} is empty")


def require_events(events: RawEvents, path: Path) -> RawEvents:
    """``events`` if there is at least one, else a :class:`DataError` naming ``path``.

    An empty ratings file would otherwise only fail when a model is fitted, far
    from the file that caused it.
    """
    if len(events) == 0:
        raise DataError(f"no interactions in {path}: the file has no data rows")
    return events


def index_ids(values: Sequence[str]) -> tuple[IdMap, npt.NDArray[np.int64]]:
    """An :class:`IdMap` in first-seen order and the index of every value."""
    with no_gc():
        first_seen = list(dict.fromkeys(values))
        positions = {external: i for i, external in enumerate(first_seen)}
        indices = np.fromiter(map(positions.__getitem__, values), np.int64, len(values))
    return IdMap(first_seen), indices


def index_int_ids(values: npt.NDArray[np.int64]) -> tuple[IdMap, npt.NDArray[np.int64]]:
    """Like :func:`index_ids` for integer ids, which become their decimal strings."""
    unique, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return IdMap([str(v) for v in unique[order].tolist()]), rank[inverse.ravel()]


Ids = list[str] | npt.NDArray[np.int64]
"""External ids as parsed: strings, or integers from the fast path."""


@dataclass(frozen=True)
class RawEvents:
    """Parsed event columns before ids are indexed."""

    users: Ids
    items: Ids
    weights: npt.NDArray[np.float32]
    timestamps: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.weights)

    def concat(self, other: RawEvents) -> RawEvents:
        """These events followed by ``other``'s."""
        return RawEvents(
            _concat_ids(self.users, other.users),
            _concat_ids(self.items, other.items),
            np.concatenate([self.weights, other.weights]),
            np.concatenate([self.timestamps, other.timestamps]),
        )

    def build(self, item_info: dict[str, ItemInfo], name: str) -> Interactions:
        """Index the ids (first-seen order) and make :class:`Interactions`."""
        users, user_idx = _index_any(self.users)
        items, item_idx = _index_any(self.items)
        return Interactions(
            users, items, user_idx, item_idx, self.weights, self.timestamps, item_info, name
        )


def _as_strings(ids: Ids) -> list[str]:
    return ids if isinstance(ids, list) else [str(v) for v in ids.tolist()]


def _concat_ids(first: Ids, second: Ids) -> Ids:
    if isinstance(first, np.ndarray) and isinstance(second, np.ndarray):
        return np.concatenate([first, second])
    return _as_strings(first) + _as_strings(second)


def _index_any(ids: Ids) -> tuple[IdMap, npt.NDArray[np.int64]]:
    return index_ids(ids) if isinstance(ids, list) else index_int_ids(ids)


_DIGIT_0, _DIGIT_9, _MINUS, _DOT, _NEWLINE, _RETURN = (ord(c) for c in "09-.\n\r")
_NON_CANONICAL = b"+ \t\v\f\x1c\x1d\x1e\x1f"
"""Bytes numpy skips or accepts around an integer (a sign, whitespace) that its
decimal rendering does not have."""


def integers_are_canonical(data: bytes, sep: str) -> bool:
    """Whether every integer field in ``data`` reads back as the text it came from.

    numpy reads ``007``, ``+7``, `` 7`` and ``-0`` as integers, but their decimal
    renderings (``7``, ``0``) are other ids. This is a conservative check over the
    whole file, every column: besides ``sep`` and line ends, only ASCII without
    whitespace or ``+`` is allowed, and no field may start with a ``0`` followed by
    a digit or with ``-0`` not followed by ``.``. A ``False`` only costs the strict
    (slower, string-keeping) parser. About 3 ms for ML-100K's 2 MB: only the bytes
    around each ``0`` are looked at.
    """
    if not data.isascii():
        return False  # numpy also skips Unicode spaces such as U+00A0
    separator = sep.encode("ascii")
    if any(bytes([c]) in data for c in _NON_CANONICAL if bytes([c]) != separator):
        return False
    raw = np.frombuffer(data, np.uint8)
    zeros = np.flatnonzero(raw == _DIGIT_0)
    if not len(zeros):
        return True
    # padded[i + 1] is raw[i]; the line ends around the bytes make the file's start a
    # field start and give every byte a successor
    end = np.frombuffer(b"\n", np.uint8)
    padded = np.concatenate([end, raw, end])
    boundaries = (_NEWLINE, _RETURN, *separator)

    def starts_field(before: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
        found = np.zeros(len(before), dtype=bool)
        for byte in boundaries:
            found |= before == byte
        return found

    before = padded[zeros]  # the byte before each "0"
    after = padded[zeros + 2]  # the byte after it
    if (starts_field(before) & (after >= _DIGIT_0) & (after <= _DIGIT_9)).any():
        return False  # a leading zero: "07"
    minus = zeros[before == _MINUS]
    # "-0" at a field start ("-0", "-07"), unless it is a decimal such as "-0.5"
    return not (starts_field(padded[minus - 1]) & (padded[minus + 2] != _DOT)).any()


def read_events_fast(
    path: Path, sep: str, *, has_timestamp: bool, skiprows: int = 0, encoding: str = "utf-8"
) -> RawEvents | None:
    """Read ``user,item,weight[,timestamp]`` rows with integer ids in C, or give up.

    This is the fast path for the MovieLens and Last.fm layouts, whose ids are
    integers. It returns ``None`` on anything unexpected (a bad row, a non-integer
    id, a non-finite weight or one beyond float32, an integer whose decimal
    rendering is not its text, such as ``007``: see :func:`integers_are_canonical`);
    the caller then re-reads the file with the strict Python parser, which either
    accepts it or reports the exact line and problem. Integer ids are re-rendered in
    decimal, which is exactly their text.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not integers_are_canonical(data, sep):
        return None
    fields: list[tuple[str, type[np.generic]]] = [
        ("user", np.int64),
        ("item", np.int64),
        ("weight", np.float64),
    ]
    if has_timestamp:
        fields.append(("timestamp", np.int64))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = np.loadtxt(
                path,
                dtype=np.dtype(fields),
                delimiter=sep,
                skiprows=skiprows,
                comments=None,
                encoding=encoding,
                ndmin=1,
            )
    except (ValueError, OSError, UnicodeError):
        return None
    weights = np.asarray(table["weight"], dtype=np.float64)
    if not (np.isfinite(weights).all() and (np.abs(weights) <= FLOAT32_MAX).all()):
        return None
    timestamps = (
        np.ascontiguousarray(table["timestamp"], dtype=np.int64)
        if has_timestamp
        else np.zeros(len(table), dtype=np.int64)
    )
    return RawEvents(
        np.ascontiguousarray(table["user"], dtype=np.int64),
        np.ascontiguousarray(table["item"], dtype=np.int64),
        weights.astype(np.float32),
        timestamps,
    )


def first_line(path: Path, encoding: str = "utf-8") -> str:
    """The first line of a file without its line ending ("" if unreadable or empty)."""
    try:
        with path.open(encoding=encoding, errors="replace", newline="") as handle:
            return handle.readline().lstrip("\ufeff").rstrip("\r\n")
    except OSError:
        return ""
