import tracemalloc
from pathlib import Path

import pytest

from mlrec.backends.memory import InMemoryFeatureRegistry
from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.core.clock import ManualClock
from mlrec.core.errors import DataFormatError, ValidationError
from mlrec.core.interactions import Interactions
from mlrec.features.apply import apply_definitions
from mlrec.features.definitions import Feature, FeatureView, ValueType
from mlrec.features.materialize import FileSource, InteractionAggregates, materialize
from mlrec.features.store import FeatureStore
from mlrec.features.yaml_loader import load_definitions

YAML = """
entities:
  - {name: user, description: a person}
feature_views:
  - name: user_stats
    entity: user
    ttl: 3600
    max_entities: 1000
    owner: growth
    tags: {tier: gold}
    features:
      - {name: interaction_count, dtype: int, default: 0}
      - {name: weight_mean, dtype: float}
      - {name: last_seen, dtype: float}
"""


def test_yaml_definitions_load_with_types_ttl_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "features.yaml"
    path.write_text(YAML)
    entities, [view] = load_definitions(path)
    assert [e.name for e in entities] == ["user"]
    assert view.ttl_seconds == 3600 and view.max_entities == 1000 and view.owner == "growth"
    assert view.feature("interaction_count").dtype is ValueType.INT


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("ttl: 3600", "ttl: 0"),
        ("dtype: int", "dtype: complex"),
        ("entity: user\n", "entity: shop\n"),
    ],
)
def test_bad_yaml_is_rejected_naming_the_view(tmp_path: Path, bad: str, message: str) -> None:
    path = tmp_path / "features.yaml"
    path.write_text(YAML.replace(bad, message, 1))
    with pytest.raises(ValidationError, match=str(path.name)):
        load_definitions(path)


def test_apply_shortened_ttl_expires_existing_keys() -> None:
    clock = ManualClock()
    online = InMemoryOnlineStore(clock)
    registry = InMemoryFeatureRegistry()
    long = FeatureView("v", "user", (Feature("a"),), ttl_seconds=3600)
    apply_definitions(registry, online, [], [long])
    store = FeatureStore(online, [long], clock=clock)
    store.write_features("v", {"u1": {"a": 1.0}})
    clock.advance(120)
    short = FeatureView("v", "user", (Feature("a"),), ttl_seconds=60)
    [result] = apply_definitions(registry, online, [], [short])
    assert result.changed and result.registered.version == 2
    assert online.read_rows("v", ["u1"], ["a"]) == [None]


def interactions() -> Interactions:
    return Interactions.from_arrays(
        ["u1", "u1", "u2", "u1"],
        ["a", "b", "a", "a"],
        [1.0, 3.0, 2.0, 1.0],
        [100, 200, 300, 400],
    )


def test_materialize_interaction_aggregates_then_incrementally() -> None:
    clock = ManualClock(start=500.0)
    view = FeatureView(
        "user_stats",
        "user",
        (
            Feature("interaction_count", ValueType.INT, 0),
            Feature("distinct_count", ValueType.INT, 0),
            Feature("weight_mean", ValueType.FLOAT),
        ),
        ttl_seconds=10_000,
    )
    store = FeatureStore(InMemoryOnlineStore(clock), [view], clock=clock)
    source = InteractionAggregates(interactions(), "user")
    progress: list[tuple[int, int | None]] = []
    report = materialize(store, "user_stats", source, progress=lambda d, t: progress.append((d, t)))
    assert (report.rows_read, report.rows_written, report.watermark) == (2, 2, 400.0)
    assert progress[-1] == (2, 2)
    values = store.get_online_features("user_stats", ["u1", "u2"]).values
    assert values == [[3, 2, 5.0 / 3], [1, 1, 2.0]]
    again = materialize(store, "user_stats", source, since=report.watermark)
    assert again.rows_read == 0


def test_file_source_reads_typed_csv_and_reports_bad_lines(tmp_path: Path) -> None:
    view = FeatureView(
        "item_stats",
        "item",
        (Feature("ctr", ValueType.FLOAT), Feature("tags", ValueType.STRING_LIST)),
        ttl_seconds=10_000,
    )
    path = tmp_path / "items.csv"
    path.write_text("item,timestamp,ctr,tags\ni1,100,0.5,a|b\ni2,200,0.25,\ni1,300,0.75,c\n")
    clock = ManualClock(start=400.0)
    store = FeatureStore(InMemoryOnlineStore(clock), [view], clock=clock)
    report = materialize(store, "item_stats", FileSource(path, view))
    assert report.rows_read == 3 and report.rows_written == 2
    assert store.get_online_features("item_stats", ["i1", "i2"]).values == [
        [0.75, ["c"]],
        [0.25, None],
    ]
    path.write_text("item,timestamp,ctr\ni1,100,0.5\ni2,200,lots\n")
    with pytest.raises(DataFormatError, match="line 3"):
        materialize(store, "item_stats", FileSource(path, view))


def test_an_entity_in_several_batches_is_counted_once_and_stale_only_by_its_newest_row(
    tmp_path: Path,
) -> None:
    view = FeatureView("item_stats", "item", (Feature("ctr", ValueType.FLOAT),), ttl_seconds=100)
    path = tmp_path / "items.csv"
    # i1's first row is past the TTL at materialization time, its second row is fresh
    path.write_text("item,timestamp,ctr\ni1,100,0.5\ni2,950,0.25\ni1,990,0.75\n")
    clock = ManualClock(start=1000.0)
    store = FeatureStore(InMemoryOnlineStore(clock), [view], clock=clock)

    report = materialize(store, "item_stats", FileSource(path, view), batch_size=1)

    assert (report.rows_read, report.rows_written, report.already_stale) == (3, 2, 0)
    assert store.get_online_features("item_stats", ["i1"]).values == [[0.75]]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("max_entities: 1000", "max_entities: 2.5"),
        ("max_entities: 1000", "max_entities: true"),
        ("max_entities: 1000", "max_entities: '1000'"),
        ("ttl: 3600", "ttl: true"),
    ],
)
def test_a_max_entities_or_ttl_of_the_wrong_type_is_rejected_when_loaded(
    tmp_path: Path, bad: str, message: str
) -> None:
    # a max_entities of 2.5 used to load, then fail every write (TypeError in memory,
    # "datatype mismatch" on SQLite, a Lua error on Redis); true loaded as 1
    path = tmp_path / "features.yaml"
    path.write_text(YAML.replace(bad, message, 1))
    with pytest.raises(ValidationError, match=rf"features.yaml: .*{message.split(':')[0]}"):
        load_definitions(path)


def test_a_definitions_file_declaring_a_view_twice_is_rejected(tmp_path: Path) -> None:
    # both used to be applied, one after the other, as two versions of one view
    path = tmp_path / "features.yaml"
    twice = YAML.replace("ttl: 3600", "ttl: 60") + YAML.split("feature_views:\n", 1)[1]
    path.write_text(twice)
    with pytest.raises(
        ValidationError, match=r"features\.yaml: feature view 'user_stats' is declared twice"
    ):
        load_definitions(path)


def test_a_misspelt_top_level_key_is_rejected_naming_the_known_ones(tmp_path: Path) -> None:
    # `views:` used to be ignored: the file applied its entities and no view, silently
    path = tmp_path / "features.yaml"
    path.write_text(YAML.replace("feature_views:", "views:"))
    with pytest.raises(
        ValidationError,
        match=r"features\.yaml: unknown top-level key 'views'; the keys are entities and "
        r"feature_views",
    ):
        load_definitions(path)


def test_malformed_yaml_is_one_line_saying_where(tmp_path: Path) -> None:
    path = tmp_path / "features.yaml"
    path.write_text("entities:\n  - name: [user\n")
    with pytest.raises(ValidationError) as caught:
        load_definitions(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not valid YAML: line 3, column 1: ")


def test_file_source_reads_a_csv_that_starts_with_a_byte_order_mark(tmp_path: Path) -> None:
    # Excel's "CSV UTF-8": the mark used to be read into the first header, "missing column"
    view = FeatureView("item_stats", "item", (Feature("ctr", ValueType.FLOAT),), ttl_seconds=100)
    path = tmp_path / "items.csv"
    path.write_text("\ufeffitem,timestamp,ctr\ni1,990,0.5\n", encoding="utf-8")
    clock = ManualClock(start=1000.0)
    store = FeatureStore(InMemoryOnlineStore(clock), [view], clock=clock)

    assert materialize(store, "item_stats", FileSource(path, view)).rows_written == 1
    assert store.get_online_features("item_stats", ["i1"]).values == [[0.5]]


def test_file_source_rejects_a_bool_it_cannot_read_naming_the_line(tmp_path: Path) -> None:
    # "maybe" (or "f", "on") used to be stored as False
    view = FeatureView("item_stats", "item", (Feature("vip", ValueType.BOOL),), ttl_seconds=100)
    path = tmp_path / "items.csv"
    path.write_text("item,timestamp,vip\ni1,990,TRUE\ni2,990,no\ni3,990,maybe\n")
    clock = ManualClock(start=1000.0)
    store = FeatureStore(InMemoryOnlineStore(clock), [view], clock=clock)

    with pytest.raises(DataFormatError, match=r"line 4: vip='maybe' is not bool"):
        materialize(store, "item_stats", FileSource(path, view))
    path.write_text("item,timestamp,vip\ni1,990,TRUE\ni2,990,no\n")
    materialize(store, "item_stats", FileSource(path, view))
    assert store.get_online_features("item_stats", ["i1", "i2"]).values == [[True], [False]]


def test_file_source_reads_parquet_whatever_the_suffix_case_with_whole_floats_as_ints(
    tmp_path: Path,
) -> None:
    # pandas stores an int column with a missing value as float64: 3.0 used to be
    # refused for an int feature; and "x.PARQUET" used to be read as (non-UTF-8) CSV
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    view = FeatureView(
        "item_stats",
        "item",
        (Feature("clicks", ValueType.INT, 0), Feature("ctr", ValueType.FLOAT)),
        ttl_seconds=100,
    )
    path = tmp_path / "items.PARQUET"
    frame = pd.DataFrame(
        {"item": ["i1", "i2"], "timestamp": [990, 990], "clicks": [3, None], "ctr": [1, 0.5]}
    )
    frame.to_parquet(path)
    clock = ManualClock(start=1000.0)
    store = FeatureStore(InMemoryOnlineStore(clock), [view], clock=clock)

    assert materialize(store, "item_stats", FileSource(path, view)).rows_written == 2
    result = store.get_online_features("item_stats", ["i1", "i2"])
    assert result.values == [[3, 1.0], [0, 0.5]] and type(result.values[0][0]) is int
    assert result.missing == [[], ["item_stats:clicks"]]


def test_file_source_streams_parquet_rather_than_decoding_the_whole_file_first(
    tmp_path: Path,
) -> None:
    # the whole table used to become Python dicts before the first row was yielded:
    # 0.7 GB for a million rows
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    n = 200_000
    path = tmp_path / "users.parquet"
    table = pa.table(
        {
            "user": pa.array([f"u{i}" for i in range(n)]),
            "timestamp": pa.array([1000.0] * n),
            "age": pa.array([float(i) for i in range(n)]),
        }
    )
    pq.write_table(table, path, row_group_size=20_000)
    del table
    view = FeatureView("user_profile", "user", (Feature("age"),), ttl_seconds=60)

    tracemalloc.start()
    try:
        batches = FileSource(path, view).rows(None, 100)
        first = next(batches)
        _, peak = tracemalloc.get_traced_memory()
        batches.close()
    finally:
        tracemalloc.stop()

    assert first[0] == ("u0", {"age": 0.0}, 1000.0) and len(first) == 100
    assert peak < 20_000_000


def test_file_source_refuses_a_row_without_an_entity_id_naming_the_line(tmp_path: Path) -> None:
    # a null entity in Parquet used to be written as the entity "None"
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "users.parquet"
    table = pa.table({"user": ["u1", None], "timestamp": [10.0, 20.0], "age": [1.0, 2.0]})
    pq.write_table(table, path)
    view = FeatureView("user_profile", "user", (Feature("age"),), ttl_seconds=60)

    with pytest.raises(DataFormatError, match="line 3: no user id"):
        list(FileSource(path, view).rows(None, 10))
    csv_path = tmp_path / "users.csv"
    csv_path.write_text("user,timestamp,age\nu1,10,1\n,20,2\n")
    with pytest.raises(DataFormatError, match="line 3: no user id"):
        list(FileSource(csv_path, view).rows(None, 10))


def test_materialize_names_the_view_features_when_the_source_has_none_of_them() -> None:
    # used to fail with "entity 'u1': no feature values given"
    view = FeatureView("user_profile", "user", (Feature("age"),), ttl_seconds=10_000)
    store = FeatureStore(InMemoryOnlineStore(), [view])

    with pytest.raises(ValidationError, match=r"none of the 2 rows read has a value for .*age"):
        materialize(store, "user_profile", InteractionAggregates(interactions(), "user"))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_missing_source_file_says_so_whatever_its_format(tmp_path: Path, suffix: str) -> None:
    # pyarrow's own error named only the path: `mlrec features materialize` printed
    # "error: items.parquet", where a missing CSV said "No such file or directory"
    view = FeatureView("item_stats", "item", (Feature("ctr", ValueType.FLOAT),), ttl_seconds=60)
    missing = tmp_path / f"items{suffix}"
    with pytest.raises(FileNotFoundError) as raised:
        list(FileSource(missing, view).rows(None, 10))
    assert raised.value.strerror == "No such file or directory"
    assert raised.value.filename == str(missing)
