"""Materialization: batch-load feature values from an offline source into the online store.

Incremental by timestamp: each view keeps a watermark (the newest timestamp loaded),
and the next run reads only rows newer than it.
"""

from __future__ import annotations

import csv
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from mlrec.core.errors import DataError, DataFormatError, ValidationError
from mlrec.core.interactions import Interactions
from mlrec.features.definitions import FeatureView, ValueType
from mlrec.features.store import FeatureStore

__all__ = [
    "FileSource",
    "InteractionAggregates",
    "MaterializeReport",
    "OfflineRow",
    "OfflineSource",
    "coerce_value",
    "materialize",
]

OfflineRow = tuple[str, dict[str, Any], float]
"""``(entity_id, {feature: value}, timestamp)``."""


class OfflineSource(Protocol):
    """Where batch feature values come from."""

    def rows(self, since: float | None, batch_size: int) -> Iterator[list[OfflineRow]]:
        """Batches of rows with timestamp strictly greater than ``since``."""
        ...

    def count(self, since: float | None) -> int | None:
        """How many rows :meth:`rows` will yield, if cheaply known (for progress)."""
        ...


@dataclass(frozen=True, slots=True)
class MaterializeReport:
    """What a materialization run did."""

    view: str
    rows_read: int
    rows_written: int
    """Distinct entities given to the store to write (an entity with rows in several
    batches counts once; one whose rows are all older than its stored row, which the
    store skips, is counted too)."""
    watermark: float | None
    seconds: float
    already_stale: int = 0
    """Entities written with a timestamp already older than the view's TTL: they are
    stored, but reads report them stale until a newer value arrives."""


class InteractionAggregates:
    """Per-user or per-item aggregates of an interaction log, as an offline source.

    Features produced (pick the ones your view declares): ``interaction_count`` (int),
    ``weight_sum`` and ``weight_mean`` (float), ``last_seen`` (float, epoch seconds),
    ``distinct_count`` (int).

    Args:
        interactions: the log.
        entity: ``"user"`` or ``"item"``.
    """

    def __init__(self, interactions: Interactions, entity: str) -> None:
        if entity not in ("user", "item"):
            raise ValidationError(f"entity must be 'user' or 'item', got {entity!r}")
        self.interactions = interactions
        self.entity = entity

    def _aggregate(self, since: float | None) -> list[OfflineRow]:
        log = self.interactions
        keys = log.user_idx if self.entity == "user" else log.item_idx
        others = log.item_idx if self.entity == "user" else log.user_idx
        ids = log.users if self.entity == "user" else log.items
        n = len(ids)
        last = np.full(n, -np.inf)
        np.maximum.at(last, keys, log.timestamps.astype(np.float64))
        counts = np.bincount(keys, minlength=n)
        sums = np.bincount(keys, weights=log.weights, minlength=n)
        pairs = np.unique(keys.astype(np.int64) * max(len(log.items), len(log.users)) + others)
        distinct = np.bincount(pairs // max(len(log.items), len(log.users)), minlength=n)
        rows: list[OfflineRow] = []
        for index in np.flatnonzero(counts):
            timestamp = float(last[index])
            if since is not None and timestamp <= since:
                continue
            rows.append(
                (
                    ids.id(int(index)),
                    {
                        "interaction_count": int(counts[index]),
                        "weight_sum": float(sums[index]),
                        "weight_mean": float(sums[index] / counts[index]),
                        "last_seen": timestamp,
                        "distinct_count": int(distinct[index]),
                    },
                    timestamp,
                )
            )
        return rows

    def rows(self, since: float | None, batch_size: int) -> Iterator[list[OfflineRow]]:
        rows = self._aggregate(since)
        for start in range(0, len(rows), batch_size):
            yield rows[start : start + batch_size]

    def count(self, since: float | None) -> int | None:
        return len(self._aggregate(since))


def coerce_value(dtype: ValueType, value: Any) -> Any:
    """A value read from a typed source (Parquet, SQL), as ``dtype`` stores it.

    Whole numbers held as floats or decimals fill ``int`` features (a pandas integer
    column with a missing value is float; PostgreSQL's ``SUM`` of a bigint is
    ``NUMERIC``), decimals fill ``float`` ones; anything else is left for the codec
    to accept or refuse.
    """
    if isinstance(value, bool):
        return value
    if dtype is ValueType.INT and isinstance(value, float | Decimal | np.floating):
        if math.isfinite(value) and value == int(value):
            return int(value)
    elif isinstance(value, Decimal) and dtype is ValueType.FLOAT:
        return float(value)
    return value


_PARQUET_BATCH_ROWS = 10_000
"""Rows of a Parquet file decoded at a time."""


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes"):
        return True
    if word in ("0", "false", "no"):
        return False
    raise ValueError(text)  # not a silent False


_PARSERS: dict[ValueType, Callable[[str], Any]] = {
    ValueType.FLOAT: float,
    ValueType.INT: int,
    ValueType.BOOL: _parse_bool,
    ValueType.STRING: str,
    ValueType.FLOAT_LIST: lambda text: [float(x) for x in text.split("|") if x],
    ValueType.INT_LIST: lambda text: [int(x) for x in text.split("|") if x],
    ValueType.STRING_LIST: lambda text: [x for x in text.split("|") if x],
}


class FileSource:
    """A CSV or Parquet file with an entity column, a timestamp column and feature columns.

    CSV values are parsed by the view's feature types (lists are ``|``-separated).
    Parquet needs ``pyarrow`` (``pip install pyarrow``).

    Args:
        path: ``.csv`` or ``.parquet`` file.
        view: the view whose features to read (columns named like the features).
        entity_column: column with entity ids (default: the view's entity name).
        timestamp_column: column with epoch seconds.
    """

    def __init__(
        self,
        path: Path,
        view: FeatureView,
        entity_column: str | None = None,
        timestamp_column: str = "timestamp",
    ) -> None:
        self.path = path
        self.view = view
        self.entity_column = entity_column or view.entity
        self.timestamp_column = timestamp_column

    def _parquet_batches(self, handle: BinaryIO) -> Iterator[list[dict[str, Any]]]:
        """The file's rows, decoded :data:`_PARQUET_BATCH_ROWS` at a time."""
        try:
            import pyarrow
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError("reading Parquet needs pyarrow: pip install pyarrow") from None
        try:
            for batch in pq.ParquetFile(handle).iter_batches(_PARQUET_BATCH_ROWS):
                yield batch.to_pylist()
        except pyarrow.ArrowException as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"{self.path}: not a readable Parquet file ({reason})") from None

    def _records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        if self.path.suffix.lower() == ".parquet":
            # opened here: pyarrow's own "file not found" names the path but not the
            # reason, where Python's OSError says both, as for a CSV
            with self.path.open("rb") as handle:
                # a record batch at a time: the whole table as Python dicts takes about
                # 0.7 GB per million rows, all of it before the first row is written
                rows = itertools.chain.from_iterable(self._parquet_batches(handle))
                yield from enumerate(rows, start=2)
                return
        # utf-8-sig: a byte order mark (Excel's "CSV UTF-8") is not part of the header
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            try:
                for index, record in enumerate(csv.DictReader(handle), start=2):
                    yield index, dict(record)
            except UnicodeDecodeError:
                # decoded a block at a time: the line is not known
                raise DataError(f"{self.path}: not UTF-8 text; save it as UTF-8") from None

    def rows(self, since: float | None, batch_size: int) -> Iterator[list[OfflineRow]]:
        columns = list(self.view.feature_names)
        batch: list[OfflineRow] = []
        path = str(self.path)
        for line, record in self._records():
            try:
                raw_entity = record[self.entity_column]
                timestamp = float(record[self.timestamp_column])
            except KeyError as exc:
                raise DataFormatError(path, line, f"missing column {exc.args[0]!r}") from None
            except (TypeError, ValueError):
                raise DataFormatError(path, line, "timestamp is not a number") from None
            if since is not None and timestamp <= since:
                continue
            if raw_entity is None or raw_entity == "":
                # str(None) would be written as the entity "None"
                raise DataFormatError(path, line, f"no {self.entity_column} id")
            entity = str(raw_entity)
            values: dict[str, Any] = {}
            for name in columns:
                if name not in record or record[name] in (None, ""):
                    continue
                raw = record[name]
                try:
                    dtype = self.view.feature(name).dtype
                    values[name] = (
                        _PARSERS[dtype](raw) if isinstance(raw, str) else coerce_value(dtype, raw)
                    )
                except ValueError:
                    raise DataFormatError(path, line, f"{name}={raw!r} is not {dtype}") from None
            if values:
                batch.append((entity, values, timestamp))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def count(self, since: float | None) -> int | None:
        return None


def materialize(
    store: FeatureStore,
    view_name: str,
    source: OfflineSource,
    since: float | None = None,
    batch_size: int = 500,
    progress: Callable[[int, int | None], None] | None = None,
) -> MaterializeReport:
    """Copy rows newer than ``since`` from ``source`` into the online store.

    Rows are written with their own timestamps, so a row already older than the
    view's TTL is stored but never served as fresh. Source columns the view does not
    declare are ignored.

    Args:
        progress: called with ``(rows done, total or None)`` after each batch.
    """
    started = time.perf_counter()
    view = store.view(view_name)
    declared = set(view.feature_names)
    oldest_fresh = store.clock.now() - view.ttl_seconds
    # newest timestamp written per entity over all batches: an entity whose rows
    # span batches is counted once, and is stale only if its newest row is
    newest: dict[str, float] = {}
    total = source.count(since)
    read = 0
    watermark = since
    for batch in source.rows(since, batch_size):
        latest: dict[str, tuple[dict[str, Any], float]] = {}
        for entity, all_values, timestamp in batch:
            watermark = timestamp if watermark is None else max(watermark, timestamp)
            values = {name: v for name, v in all_values.items() if name in declared}
            if not values:
                continue  # nothing of this view in the row
            previous = latest.get(entity)
            if previous is None or timestamp >= previous[1]:
                merged = {**previous[0], **values} if previous else values
                latest[entity] = (merged, timestamp)
        store.write_features(
            view_name,
            {entity: values for entity, (values, _) in latest.items()},
            written_at={entity: ts for entity, (_, ts) in latest.items()},
        )
        for entity, (_, ts) in latest.items():
            newest[entity] = max(ts, newest.get(entity, ts))
        read += len(batch)
        if progress is not None:
            progress(read, total)
    if read and not newest:
        raise ValidationError(
            f"{view_name}: none of the {read} rows read has a value for a feature of the"
            f" view ({', '.join(view.feature_names)})"
        )
    already_stale = sum(1 for ts in newest.values() if ts < oldest_fresh)
    return MaterializeReport(
        view_name, read, len(newest), watermark, time.perf_counter() - started, already_stale
    )
