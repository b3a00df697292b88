"""The ``mlrec`` command: train, evaluate, recommend, manage models, run the system.

Every sub-command reads the same ``MLREC_*`` settings as the services, so
``MLREC_DATA_DIR`` / ``MLREC_MODELS_DIR`` / ``MLREC_DATABASE_URL`` apply here too.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.table import Table

from mlrec.backends.factory import open_artifact_store, open_event_log, open_model_registry
from mlrec.cli.common import console, err_console, fail, fraction_progress, settings
from mlrec.cli.features import features_app
from mlrec.cli.serve import serve_app
from mlrec.core.errors import MlrecError
from mlrec.core.interactions import Interactions
from mlrec.data import load_dataset, load_interactions, random_split_per_user
from mlrec.models import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    create_model,
    load_model,
    parse_params,
)
from mlrec.models.artifact_store import ArtifactStore, LocalArtifactStore
from mlrec.models.base import Recommender
from mlrec.models.metrics import evaluate as evaluate_model
from mlrec.models.publish import publish_model
from mlrec.models.registry import ModelRegistry, ModelVersion, Stage

if TYPE_CHECKING:
    from mlrec.core.settings import CommonSettings

app = typer.Typer(
    name="mlrec",
    help="mlrec: train, evaluate and serve recommendation models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List, inspect and promote registered model versions.")
app.add_typer(models_app, name="models")
app.add_typer(features_app, name="features")
app.add_typer(serve_app, name="serve")


class DataFormat(StrEnum):
    """File formats ``--format`` accepts."""

    MOVIELENS_100K = "movielens-100k"
    MOVIELENS_CSV = "movielens-csv"
    LASTFM = "lastfm"
    CSV = "csv"


def _registry(config: CommonSettings) -> ModelRegistry:
    return open_model_registry(config.resolved_database_url)


def _announce_promotion(config: CommonSettings, version: ModelVersion) -> None:
    """Tell serving replicas at once (they also poll the registry as a fallback)."""
    from mlrec.events.log import MODELS_PROMOTED_TOPIC

    payload = json.dumps(
        {"name": version.name, "version": version.version, "sha256": version.artifact_sha256}
    ).encode()
    try:
        event_log = open_event_log(config.kafka_bootstrap_servers, config.data_dir / "events.db")
        event_log.ensure_topics({MODELS_PROMOTED_TOPIC: 1})
        producer = event_log.producer("mlrec-cli")
        producer.produce(MODELS_PROMOTED_TOPIC, [(version.name.encode(), payload)])
        producer.close()
    except MlrecError as exc:
        err_console.print(f"[yellow]warning:[/] promotion not announced ({exc}); replicas poll")


def _artifact_stores(config: CommonSettings) -> list[ArtifactStore]:
    """The DB (so replicas fetch by sha256) and the models directory (for people)."""
    return [
        open_artifact_store(config.resolved_database_url),
        LocalArtifactStore(config.resolved_models_dir),
    ]


def _load(
    interactions: Path | None, data_format: DataFormat | None, dataset: str | None
) -> Interactions:
    if interactions is not None:
        return load_interactions(interactions, (data_format or DataFormat.CSV).value)
    return load_dataset(dataset or "demo", settings().data_dir)


@app.callback()
def _main() -> None:
    """mlrec: ML recommendation platform."""


@app.command()
def train(
    interactions: Annotated[
        Path | None, typer.Option(help="Interaction file or directory to train on.")
    ] = None,
    data_format: Annotated[
        DataFormat | None, typer.Option("--format", help="Format of --interactions.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="A dataset by name: demo, ml-100k, ml-latest-small, lastfm.")
    ] = None,
    algorithm: Annotated[str, typer.Option(help="Algorithm name.")] = DEFAULT_ALGORITHM,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Hyper-parameter as key=value (repeat).")
    ] = None,
    output: Annotated[Path, typer.Option(help="Directory to write the model artifact to.")] = Path(
        "model"
    ),
    register: Annotated[
        str | None, typer.Option(help="Also register the model under this name.")
    ] = None,
) -> None:
    """Train a model and save it as an artifact directory."""
    if algorithm not in ALGORITHMS:
        fail(f"unknown algorithm {algorithm!r}; choose from {', '.join(sorted(ALGORITHMS))}")
    data = _load(interactions, data_format, dataset)
    params = parse_params(ALGORITHMS[algorithm], param or [])
    model = create_model(algorithm, **params)
    console.print(
        f"training [bold]{algorithm}[/] on {data.name}: {data.n_users} users, "
        f"{data.n_items} items, {len(data)} interactions"
    )
    started = time.perf_counter()
    with fraction_progress(f"fit {algorithm}") as progress:
        model.fit(data, progress=progress)
    elapsed = time.perf_counter() - started
    sha = model.save(output)
    console.print(f"trained in {elapsed:.2f} s; artifact {output} (sha256 {sha[:12]})")
    if register:
        config = settings()
        version = publish_model(
            model, output, _artifact_stores(config), _registry(config), register, data.name
        )
        console.print(f"registered {version.ref} ({version.stage})")


@app.command()
def recommend(
    model: Annotated[Path, typer.Option(help="Model artifact directory.")],
    k: Annotated[int, typer.Option(min=1, max=1000, help="Items per user.")] = 10,
    output: Annotated[Path, typer.Option(help="CSV to write.")] = Path("recs.csv"),
    include_seen: Annotated[bool, typer.Option(help="Keep items seen in training.")] = False,
) -> None:
    """Write top-k recommendations for every training user as user_id,item_id,rank,score."""
    started = time.perf_counter()
    recommender = load_model(model)
    users = np.arange(len(recommender.users), dtype=np.int64)
    indices, scores = recommender.recommend_batch(users, k, exclude_seen=not include_seen)
    user_ids = recommender.users.ids()
    item_ids = recommender.items.ids()
    with output.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "rank", "score"])
        for row, user_id in enumerate(user_ids):
            for rank, (item, score) in enumerate(zip(indices[row], scores[row], strict=True)):
                if np.isfinite(score):
                    writer.writerow([user_id, item_ids[item], rank + 1, f"{score:.6g}"])
    elapsed = time.perf_counter() - started
    console.print(f"wrote {output}: {len(user_ids)} users x {k} in {elapsed:.2f} s")


def _training_log(model: Recommender) -> Interactions:
    """The model's training matrix as an interaction log (what evaluation excludes)."""
    coo = model.user_items.tocoo()
    return Interactions(
        model.users,
        model.items,
        coo.row.astype(np.int64),
        coo.col.astype(np.int64),
        coo.data.astype(np.float32),
        np.zeros(coo.nnz, np.int64),
    )


_COLUMNS = {
    "precision": "P@k",
    "recall": "R@k",
    "ndcg": "NDCG@k",
    "map": "MAP@k",
    "hit_rate": "HR@k",
    "mrr": "MRR",
    "coverage": "cover",
    "fit_s": "fit s",
}


def _metrics_table(title: str, rows: list[tuple[str, dict[str, float]]], k: int) -> Table:
    table = Table(title=title)
    table.add_column("model", no_wrap=True)
    names = [n for n in _COLUMNS if rows and n in rows[0][1]]
    for name in names:
        table.add_column(_COLUMNS[name].replace("k", str(k)), justify="right", no_wrap=True)
    for label, metrics in rows:
        table.add_row(
            label, *(f"{metrics[n]:.4f}" if n != "fit_s" else f"{metrics[n]:.2f}" for n in names)
        )
    return table


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Model artifact directory.")],
    test: Annotated[Path, typer.Option(help="Held-out interactions (same id space).")],
    data_format: Annotated[DataFormat, typer.Option("--format")] = DataFormat.CSV,
    k: Annotated[int, typer.Option(min=1, max=1000)] = 10,
) -> None:
    """Print ranking metrics of a model on held-out interactions."""
    recommender = load_model(model)
    held_out = load_interactions(test, data_format.value)
    metrics = evaluate_model(recommender, _training_log(recommender), held_out, k=k)
    console.print(
        _metrics_table(
            f"{recommender.algorithm} on {test.name}", [(recommender.algorithm, metrics)], k
        )
    )


@app.command()
def run(
    dataset: Annotated[str, typer.Option(help="Dataset to train on.")] = "demo",
    k: Annotated[int, typer.Option(min=1, max=100)] = 10,
    name: Annotated[str, typer.Option(help="Registry name to publish the best model as.")] = (
        "default"
    ),
) -> None:
    """Train every algorithm on a 75/25 split, print the evaluation table, publish the best."""
    config = settings()
    data = load_dataset(dataset, config.data_dir)
    train_split, test_split = random_split_per_user(data, test_ratio=0.25, seed=42)
    console.print(
        f"dataset {data.name}: {data.n_users} users, {data.n_items} items, "
        f"{len(data)} interactions; 75/25 split per user"
    )
    rows: list[tuple[str, dict[str, float]]] = []
    for algorithm in ALGORITHMS:
        model = create_model(algorithm)
        started = time.perf_counter()
        with fraction_progress(f"fit {algorithm}") as progress:
            model.fit(train_split, progress=progress)
        seconds = time.perf_counter() - started
        metrics = evaluate_model(model, train_split, test_split, k=k)
        rows.append((algorithm, {**metrics, "fit_s": seconds}))
    console.print(_metrics_table(f"{data.name}: 25% held out per user, top-{k}", rows, k))
    best_name, best_metrics = max(rows, key=lambda row: row[1]["ndcg"])
    final = create_model(best_name)
    with fraction_progress(f"refit {best_name} on all data") as progress:
        final.fit(data, progress=progress)
    registry = _registry(config)
    staging_dir = config.resolved_models_dir / ".staging" / best_name
    final.save(staging_dir)
    version = publish_model(
        final,
        staging_dir,
        _artifact_stores(config),
        registry,
        name=name,
        dataset=data.name,
        metrics={key: round(value, 6) for key, value in best_metrics.items()},
    )
    shutil.rmtree(staging_dir, ignore_errors=True)
    promoted = registry.promote(version.name, version.version)
    _announce_promotion(config, promoted)
    console.print(
        f"best: [bold]{best_name}[/] ndcg@{k}={best_metrics['ndcg']:.4f}; "
        f"published {version.ref} to production ({config.resolved_models_dir})"
    )


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Option(help="Only this model name.")] = None,
    stage: Annotated[Stage | None, typer.Option(help="Only this stage.")] = None,
) -> None:
    """List registered model versions, newest first."""
    versions = _registry(settings()).list(name, stage)
    table = Table(title="model versions")
    for column in ("ref", "algorithm", "stage", "dataset", "metrics", "created", "sha256"):
        table.add_column(column)
    for v in versions:
        shown = ", ".join(f"{m}={x:.4f}" for m, x in v.metrics.items() if m in ("ndcg", "recall"))
        table.add_row(
            v.ref,
            v.algorithm,
            v.stage.value,
            v.dataset,
            shown,
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            v.artifact_sha256[:12],
        )
    console.print(table)


def _parse_ref(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.partition(":")
    if version and not version.isdigit():
        fail(f"bad model reference {ref!r}: expected NAME or NAME:VERSION")
    return name, int(version) if version else None


@models_app.command("show")
def models_show(ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION")]) -> None:
    """Show one model version in full."""
    name, version = _parse_ref(ref)
    found = _registry(settings()).get(name, version)
    for key, value in (
        ("ref", found.ref),
        ("algorithm", found.algorithm),
        ("stage", found.stage.value),
        ("dataset", found.dataset),
        ("params", found.params),
        ("metrics", found.metrics),
        ("artifact", found.artifact_path),
        ("sha256", found.artifact_sha256),
        ("created_at", found.created_at.isoformat()),
    ):
        console.print(f"[bold]{key:>10}[/] {value}")


@models_app.command("promote")
def models_promote(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION")],
    stage: Annotated[Stage, typer.Option(help="Target stage.")] = Stage.PRODUCTION,
) -> None:
    """Promote a version (to production by default; the previous one is archived)."""
    name, version = _parse_ref(ref)
    if version is None:
        fail("promote needs NAME:VERSION")
    assert version is not None
    config = settings()
    promoted = _registry(config).promote(name, version, stage)
    if promoted.stage is Stage.PRODUCTION:
        _announce_promotion(config, promoted)
    console.print(f"{promoted.ref} is now {promoted.stage.value}")


def main(argv: list[str] | None = None) -> Any:
    """Entry point that turns mlrec errors into one readable line and exit code 2."""
    try:
        return app(argv)
    except MlrecError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


@app.command()
def up(
    dataset: Annotated[str, typer.Option(help="Dataset to train on if no model serves.")] = "demo",
    retrain: Annotated[bool, typer.Option(help="Train again even if a model serves.")] = False,
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
) -> None:
    """Run the whole system locally on embedded defaults: train if needed, then serve.

    With no MLREC_REDIS_URL / MLREC_KAFKA_BOOTSTRAP_SERVERS the API uses the embedded
    SQLite feature store and event log, and runs the stream processor in-process.
    """
    from mlrec.cli.serve import serve_api

    config = settings()
    if retrain or _registry(config).production("default") is None:
        run(dataset=dataset, k=10, name="default")
    console.print(f"serving on http://127.0.0.1:{port}  (docs: /docs, metrics: /metrics)")
    serve_api(host=None, port=port, workers=1)
