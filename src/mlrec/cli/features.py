"""``mlrec features``: apply definitions, materialize, inspect and read online features."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlrec.backends.factory import open_feature_registry, open_online_store
from mlrec.cli.common import (
    DownloadOption,
    console,
    counting_progress,
    fail,
    load_named_dataset,
    settings,
)
from mlrec.core.urls import redact_url

if TYPE_CHECKING:
    from mlrec.features import FeatureStore, OfflineSource

# The feature-store modules are imported inside the commands, so other commands
# (`mlrec recommend`) do not pay for them at start-up.

features_app = typer.Typer(
    help="Feature store: definitions, materialization, stats, reads.", no_args_is_help=True
)


def _open() -> tuple[FeatureStore, object]:
    from mlrec.features import FeatureStore

    config = settings()
    registry = open_feature_registry(config.resolved_database_url)
    online = open_online_store(config.resolved_online_store_url)
    views = [registered.view for registered in registry.list_views()]
    return FeatureStore(online, views), registry


@features_app.command("apply")
def apply(
    definitions: Annotated[
        Path | None, typer.Argument(help="YAML definitions (default: mlrec's built-in views).")
    ] = None,
) -> None:
    """Register entities and views; a changed TTL is applied to keys already stored."""
    from mlrec.features import BUILTIN_ENTITIES, BUILTIN_VIEWS, apply_definitions, load_definitions

    config = settings()
    if definitions is not None:
        definitions = definitions.expanduser()
    entities, views = (
        load_definitions(definitions) if definitions else (BUILTIN_ENTITIES, BUILTIN_VIEWS)
    )
    if not entities and not views:  # e.g. a misspelt top-level key: nothing would be applied
        fail(f"{definitions}: defines no entities and no feature_views (the top-level keys)")
    registry = open_feature_registry(config.resolved_database_url)
    online = open_online_store(config.resolved_online_store_url)
    for result in apply_definitions(registry, online, list(entities), list(views)):
        state = "created" if result.created else "changed" if result.changed else "unchanged"
        registered = result.registered
        console.print(
            f"{registered.view.name}: v{registered.version} {state} "
            f"(ttl {registered.view.ttl_seconds:.15g} s)"  # :g wrote 30 days as 2.592e+06
        )
    if not views:
        names = ", ".join(entity.name for entity in entities)
        console.print(
            f"entities applied: {escape(names)}; "
            f"{escape(str(definitions))} defines no feature views"
        )


@features_app.command("materialize")
def materialize_command(
    view: Annotated[str, typer.Argument(help="Feature view to fill.")],
    dataset: Annotated[
        str | None, typer.Option(help="Interaction dataset to aggregate (user_/item_stats).")
    ] = None,
    source: Annotated[
        Path | None, typer.Option(help="CSV or Parquet file of feature rows.")
    ] = None,
    sql_table: Annotated[
        str | None, typer.Option(help="SQL table of feature rows (schema.name).")
    ] = None,
    sql_url: Annotated[
        str | None, typer.Option(help="Database of --sql-table (default MLREC_DATABASE_URL).")
    ] = None,
    full: Annotated[bool, typer.Option(help="Ignore the watermark and reload everything.")] = False,
    download: DownloadOption = False,
) -> None:
    """Load feature values into the online store, incrementally by timestamp."""
    from mlrec.features import FeatureStore, FileSource, InteractionAggregates, materialize

    given = [
        option
        for option, value in (
            ("--dataset", dataset),
            ("--source", source),
            ("--sql-table", sql_table),
        )
        if value is not None
    ]
    if len(given) > 1:
        fail(f"give one of --dataset, --source and --sql-table, not {', '.join(given)}")
    if sql_url is not None and sql_table is None:
        fail("--sql-url is the database of --sql-table; give --sql-table too")
    if download and dataset is None:
        fail("--download fetches a --dataset by name; it does not apply to --source or --sql-table")
    config = settings()
    registry = open_feature_registry(config.resolved_database_url)
    registered = registry.get_view(view)
    store = FeatureStore(open_online_store(config.resolved_online_store_url), [registered.view])
    offline: OfflineSource
    if sql_table is not None:
        from mlrec.backends.sql.offline_source import SqlTableSource

        offline = SqlTableSource(
            sql_url or config.resolved_database_url, sql_table, registered.view
        )
    elif source is not None:
        offline = FileSource(source.expanduser(), registered.view)
    elif dataset is not None:
        offline = InteractionAggregates(
            load_named_dataset(dataset, download), registered.view.entity
        )
    else:
        fail("give --dataset NAME, --source FILE or --sql-table TABLE")
        return
    since = None if full else registered.materialized_until
    with counting_progress(f"materialize {view}") as progress:
        report = materialize(store, view, offline, since=since, progress=progress)
    if report.watermark is not None:
        registry.set_materialized_until(view, report.watermark)
    console.print(
        f"{view}: read {report.rows_read} rows, wrote {report.rows_written} entities "
        f"in {report.seconds:.2f} s; watermark {report.watermark}"
    )
    if report.already_stale:
        console.print(
            f"[yellow]note:[/] {report.already_stale} entities have values older than the "
            f"view's TTL ({registered.view.ttl_seconds:.15g} s): reads report them stale"
        )


def _human(seconds: float) -> str:
    """A compact duration: 45s, 3.2h, 7.0d."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@features_app.command("stats")
def stats(
    sample: Annotated[
        int, typer.Option(min=1, max=10_000, help="Entities sampled per view.")
    ] = 200,
) -> None:
    """Per view: entities, bytes, TTL distribution and staleness (memory budget)."""
    store, _ = _open()
    table = Table(title="online store: " + redact_url(settings().resolved_online_store_url))
    table.add_column("view", no_wrap=True)
    for column in ("entities", "max", "B/entity", "total", "ttl left p50/min", "age p50/max"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, view in sorted(store.views.items()):
        s = store.online.view_stats(name, sample)
        ttl = (
            f"{_human(statistics.median(s.ttl_remaining))}/{_human(min(s.ttl_remaining))}"
            if s.ttl_remaining
            else "-"
        )
        age = (
            f"{_human(statistics.median(s.write_ages))}/{_human(max(s.write_ages))}"
            if s.write_ages
            else "-"
        )
        table.add_row(
            name,
            str(s.entities),
            str(view.max_entities or "-"),
            f"{s.sampled_bytes:.0f}",
            f"{s.sampled_bytes * s.entities / 1e6:.2f} MB",
            ttl,
            age,
        )
    console.print(table)


@features_app.command("get")
def get(
    refs: Annotated[str, typer.Argument(help="A view, or comma-separated view:feature refs.")],
    entity_ids: Annotated[list[str], typer.Argument(help="Entity ids.")],
) -> None:
    """Read online features as JSON (values, missing, stale)."""
    store, _ = _open()
    parsed = refs.split(",") if "," in refs or ":" in refs else refs
    result = store.get_online_features(parsed, entity_ids)
    for entity, row, missing, stale in zip(
        result.entity_ids, result.to_dicts(), result.missing, result.stale, strict=True
    ):
        console.print_json(
            json.dumps({"entity_id": entity, "values": row, "missing": missing, "stale": stale})
        )
