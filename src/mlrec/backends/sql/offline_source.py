"""A SQL table (PostgreSQL, SQLite, ...) as an offline source for materialization."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, MetaData, Table, and_, func, or_, select
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from mlrec.backends.sql.engine import create_sql_engine
from mlrec.core.errors import BackendUnavailableError, DataError, ValidationError
from mlrec.features.definitions import FeatureView
from mlrec.features.materialize import OfflineRow, coerce_value

__all__ = ["SqlTableSource"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class SqlTableSource:
    """Rows of a table with an entity column, a timestamp column and feature columns.

    Only rows newer than the watermark are read (``WHERE timestamp > since``, ordered
    by timestamp), streamed in batches with a server-side cursor.

    Args:
        url_or_engine: the database: a SQLite or PostgreSQL URL (see
            :func:`~mlrec.backends.sql.engine.create_sql_engine`), or an engine.
        table: ``name`` or ``schema.name``.
        view: the view whose features are read (columns named like the features).
        entity_column: defaults to the view's entity name.
        timestamp_column: epoch seconds (numeric).
    """

    def __init__(
        self,
        url_or_engine: str | Engine,
        table: str,
        view: FeatureView,
        entity_column: str | None = None,
        timestamp_column: str = "timestamp",
    ) -> None:
        if not _IDENTIFIER.match(table):
            raise ValidationError(f"bad table name {table!r}: use name or schema.name")
        self.engine = (
            create_sql_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        )
        schema, _, name = table.rpartition(".")
        try:
            self.table = Table(name, MetaData(schema=schema or None), autoload_with=self.engine)
        except NoSuchTableError:
            raise ValidationError(f"table {table!r} does not exist") from None
        except SQLAlchemyError as exc:
            raise BackendUnavailableError(f"cannot read table {table!r}: {exc}") from exc
        self.view = view
        self.entity_column = entity_column or view.entity
        self.timestamp_column = timestamp_column
        missing = [c for c in (self.entity_column, timestamp_column) if c not in self.table.columns]
        if missing:
            raise ValidationError(f"table {table!r} has no column(s) {', '.join(missing)}")
        try:
            python_type = self.table.c[timestamp_column].type.python_type
        except NotImplementedError:  # an untyped SQLite column: checked row by row
            python_type = float
        if not issubclass(python_type, int | float | Decimal) or issubclass(python_type, bool):
            raise ValidationError(
                f"table {table!r}: column {timestamp_column!r} must hold epoch seconds (a"
                f" number), not {self.table.c[timestamp_column].type}"
            )
        self.features = [f for f in view.feature_names if f in self.table.columns]
        if not self.features:
            raise ValidationError(f"table {table!r} has none of the features of {view.name!r}")

    def _where(self, since: float | None) -> Any:
        ts = self.table.c[self.timestamp_column]
        newer = ts > since if since is not None else ts.is_not(None)
        # a row with no value for any of the view's features is not a row of the view
        # (and count() must agree with what rows() yields)
        return and_(newer, or_(*(self.table.c[name].is_not(None) for name in self.features)))

    def count(self, since: float | None) -> int | None:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(self.table).where(self._where(since))
                ).scalar_one()
            )

    def rows(self, since: float | None, batch_size: int) -> Iterator[list[OfflineRow]]:
        columns = [self.table.c[self.entity_column], self.table.c[self.timestamp_column]]
        columns += [self.table.c[name] for name in self.features]
        query = select(*columns).where(self._where(since)).order_by(columns[1])
        dtypes = [self.view.feature(name).dtype for name in self.features]
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(
                query
            )
            for partition in result.partitions(batch_size):
                batch: list[OfflineRow] = []
                for row in partition:
                    values = {
                        name: coerce_value(dtype, value)
                        for name, dtype, value in zip(self.features, dtypes, row[2:], strict=True)
                        if value is not None
                    }
                    if values:
                        if row[0] is None:  # str(None) would be written as the entity "None"
                            raise DataError(
                                f"table {self.table.fullname!r}: a row stamped {row[1]!r} has"
                                f" no {self.entity_column} (NULL)"
                            )
                        try:
                            timestamp = float(row[1])
                        except (TypeError, ValueError):  # SQLite columns take any value
                            raise DataError(
                                f"table {self.table.fullname!r}: {self.entity_column}"
                                f" {row[0]!r} has timestamp {row[1]!r}, not epoch seconds"
                            ) from None
                        batch.append((str(row[0]), values, timestamp))
                yield batch
