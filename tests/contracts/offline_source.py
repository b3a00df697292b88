"""SqlTableSource behaviour, shared by the SQLite (unit) and PostgreSQL (integration) tests."""

from __future__ import annotations

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
)

from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.backends.sql.engine import normalise_url
from mlrec.backends.sql.offline_source import SqlTableSource
from mlrec.core.clock import ManualClock
from mlrec.core.errors import DataError, ValidationError
from mlrec.features.definitions import Feature, FeatureView, ValueType
from mlrec.features.materialize import materialize
from mlrec.features.store import FeatureStore

VIEW = FeatureView(
    "item_stats",
    "item",
    (Feature("ctr", ValueType.FLOAT), Feature("clicks", ValueType.INT, 0)),
    ttl_seconds=10_000,
)


def make_table(url: str) -> None:
    engine = create_engine(normalise_url(url))
    metadata = MetaData()
    table = Table(
        "item_features",
        metadata,
        Column("item", String(64)),
        Column("timestamp", Float),
        Column("ctr", Numeric(10, 4)),
        Column("clicks", Integer),
        Column("ignored", String(10)),
    )
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"item": "i1", "timestamp": 100.0, "ctr": 0.5, "clicks": 3, "ignored": "x"},
                {"item": "i2", "timestamp": 200.0, "ctr": 0.25, "clicks": None, "ignored": "y"},
                {"item": "i1", "timestamp": 300.0, "ctr": 0.75, "clicks": 9, "ignored": "z"},
            ],
        )
    engine.dispose()


class SqlTableSourceContract:
    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError

    def test_materializes_latest_row_per_entity_then_only_newer_rows(self, url: str) -> None:
        make_table(url)
        clock = ManualClock(start=400.0)
        store = FeatureStore(InMemoryOnlineStore(clock), [VIEW], clock=clock)
        source = SqlTableSource(url, "item_features", VIEW)
        assert source.count(None) == 3 and source.count(150.0) == 2
        report = materialize(store, "item_stats", source, batch_size=2)
        assert (report.rows_read, report.watermark) == (3, 300.0)
        values = store.get_online_features("item_stats", ["i1", "i2"]).values
        assert values == [[0.75, 9], [0.25, 0]]
        assert materialize(store, "item_stats", source, since=report.watermark).rows_read == 0

    def test_count_is_the_number_of_rows_the_source_yields(self, url: str) -> None:
        # a row whose view features are all NULL is not yielded: counted, it made the
        # materialize progress bar end short of its total
        make_table(url)
        engine = create_engine(normalise_url(url))
        with engine.begin() as conn:
            conn.execute(
                Table("item_features", MetaData(), autoload_with=conn).insert(),
                [{"item": "i3", "timestamp": 250.0, "ctr": None, "clicks": None, "ignored": "w"}],
            )
        engine.dispose()
        source = SqlTableSource(url, "item_features", VIEW)
        for since in (None, 150.0):
            yielded = sum(len(batch) for batch in source.rows(since, 2))
            assert source.count(since) == yielded
        assert source.count(None) == 3

    def test_unknown_table_or_columns_are_named(self, url: str) -> None:
        make_table(url)
        with pytest.raises(ValidationError, match="'nope' does not exist"):
            SqlTableSource(url, "nope", VIEW)
        with pytest.raises(ValidationError, match="no column"):
            SqlTableSource(url, "item_features", VIEW, timestamp_column="ts")
        with pytest.raises(ValidationError, match="bad table name"):
            SqlTableSource(url, "x; drop table y", VIEW)

    def test_a_timestamp_column_that_holds_no_numbers_is_refused_when_opened(
        self, url: str
    ) -> None:
        # a TIMESTAMP column used to fail on the first row with float(datetime)'s TypeError
        engine = create_engine(normalise_url(url))
        metadata = MetaData()
        Table(
            "dated_features",
            metadata,
            Column("item", String(64)),
            Column("timestamp", DateTime(timezone=True)),
            Column("clicks", Integer),
        )
        metadata.drop_all(engine)
        metadata.create_all(engine)
        engine.dispose()

        with pytest.raises(ValidationError, match="'timestamp' must hold epoch seconds"):
            SqlTableSource(url, "dated_features", VIEW)

    def test_a_row_without_an_entity_id_is_refused_naming_the_column(self, url: str) -> None:
        # a NULL entity used to be written as the entity "None"
        make_table(url)
        engine = create_engine(normalise_url(url))
        table = Table("item_features", MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"item": None, "timestamp": 400.0, "clicks": 1}])
        engine.dispose()
        store = FeatureStore(InMemoryOnlineStore(ManualClock(start=500.0)), [VIEW])

        with pytest.raises(DataError, match=r"400\.0 has no item \(NULL\)"):
            materialize(store, "item_stats", SqlTableSource(url, "item_features", VIEW))
        assert store.get_online_features("item_stats", ["None"]).missing == [
            ["item_stats:ctr", "item_stats:clicks"]
        ]

    def test_whole_numbers_of_numeric_or_float_columns_fill_int_features(self, url: str) -> None:
        # SUM() of a bigint is NUMERIC on PostgreSQL, and a float column holds whole
        # numbers: both used to be refused as "clicks is int, got float 3.0"
        engine = create_engine(normalise_url(url))
        metadata = MetaData()
        table = Table(
            "summed_features",
            metadata,
            Column("item", String(64)),
            Column("timestamp", Numeric(14, 3)),
            Column("ctr", Numeric(10, 4)),
            Column("clicks", Numeric(20, 0)),
        )
        metadata.drop_all(engine)
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                [
                    {"item": "i1", "timestamp": 100, "ctr": 0.5, "clicks": 3},
                    {"item": "i2", "timestamp": 200.5, "ctr": 1, "clicks": 12345678901234},
                ],
            )
        engine.dispose()
        clock = ManualClock(start=400.0)
        store = FeatureStore(InMemoryOnlineStore(clock), [VIEW], clock=clock)

        report = materialize(store, "item_stats", SqlTableSource(url, "summed_features", VIEW))

        assert (report.rows_read, report.watermark) == (2, 200.5)
        values = store.get_online_features("item_stats", ["i1", "i2"]).values
        assert values == [[0.5, 3], [1.0, 12345678901234]]
        assert [type(v) for row in values for v in row] == [float, int, float, int]
