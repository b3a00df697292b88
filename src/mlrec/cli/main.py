"""The ``mlrec`` command: train, evaluate, recommend, manage models, run the system.

Every sub-command reads the same ``MLREC_*`` settings as the services, so
``MLREC_DATA_DIR`` / ``MLREC_MODELS_DIR`` / ``MLREC_DATABASE_URL`` apply here too.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import numpy.typing as npt
import typer
from rich.markup import escape
from rich.table import Table

from mlrec.backends.factory import open_artifact_store, open_event_log, open_model_registry
from mlrec.cli.common import (
    DownloadOption,
    console,
    describe_os_error,
    err_console,
    fail,
    fraction_progress,
    load_named_dataset,
    settings,
    warn,
)
from mlrec.cli.features import features_app
from mlrec.cli.serve import PortOption, serve_app
from mlrec.core.errors import MlrecError
from mlrec.core.ids import IdMap
from mlrec.core.interactions import Interactions
from mlrec.data import (
    DATASETS,
    leave_last_out,
    load_csv,
    load_interactions,
    load_lastfm,
    load_movielens_100k,
    load_movielens_csv,
    random_split_per_user,
    time_split,
)
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
from mlrec.models.registry import (
    ModelRegistry,
    ModelVersion,
    Stage,
    model_name_problem,
    parse_model_ref,
)

if TYPE_CHECKING:
    from mlrec.core.settings import CommonSettings

app = typer.Typer(
    name="mlrec",
    help="mlrec: train, evaluate and serve recommendation models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="List, inspect and promote registered model versions.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
app.add_typer(features_app, name="features")
app.add_typer(serve_app, name="serve")


class DataFormat(StrEnum):
    """File formats ``--format`` accepts."""

    MOVIELENS_100K = "movielens-100k"
    MOVIELENS_CSV = "movielens-csv"
    LASTFM = "lastfm"
    CSV = "csv"


class SplitMethod(StrEnum):
    """How ``mlrec split`` picks the held-out events."""

    RANDOM = "random"
    LEAVE_LAST_OUT = "leave-last-out"
    TIME = "time"


InteractionsOption = Annotated[
    Path | None, typer.Option("--interactions", help="Interaction file or directory.")
]
FormatOption = Annotated[
    DataFormat | None, typer.Option("--format", help="Format of --interactions.")
]
DatasetOption = Annotated[
    str | None,
    typer.Option("--dataset", help="A dataset by name: demo, ml-100k, ml-latest-small, lastfm."),
]


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
        warn(f"promotion not announced ({exc}); replicas poll")


def _artifact_stores(config: CommonSettings) -> list[ArtifactStore]:
    """The DB (so replicas fetch by sha256) and the models directory (for people).

    The models directory is created here, so a command that trains before it
    publishes fails at once, not after training, if it cannot be.
    """
    try:
        config.resolved_models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create the models directory: {describe_os_error(exc)}")
    return [
        open_artifact_store(config.resolved_database_url),
        LocalArtifactStore(config.resolved_models_dir),
    ]


def _load(
    interactions: Path | None,
    data_format: DataFormat | None,
    dataset: str | None,
    download: bool = False,
) -> Interactions:
    if interactions is not None:
        if dataset is not None:
            fail("give either --interactions or --dataset, not both")
        if download:
            fail("--download fetches a --dataset by name; it does not apply to --interactions")
        return load_interactions(interactions, (data_format or DataFormat.CSV).value)
    if data_format is not None:
        fail("--format describes --interactions; a --dataset knows its own format")
    return load_named_dataset(dataset or "demo", download)


def _check_model_name(option: str, name: str) -> None:
    """End the command (before any work) if ``name`` breaks the registry's name rule."""
    problem = model_name_problem(name)
    if problem is not None:
        fail(f"{option}: {problem}")


# What each --format's loader reads from a dataset directory: its ratings file, and
# the side files (titles, genre names) it reads beside the ratings file when present.
_FORMAT_FILES: dict[DataFormat, tuple[str | None, tuple[str, ...]]] = {
    DataFormat.MOVIELENS_100K: ("u.data", ("u.item", "u.genre")),
    DataFormat.MOVIELENS_CSV: ("ratings.csv", ("movies.csv",)),
    DataFormat.LASTFM: ("user_artists.dat", ("artists.dat",)),
    DataFormat.CSV: (None, ()),
}
_LOADER_FORMATS: dict[object, DataFormat] = {
    load_movielens_100k: DataFormat.MOVIELENS_100K,
    load_movielens_csv: DataFormat.MOVIELENS_CSV,
    load_lastfm: DataFormat.LASTFM,
    load_csv: DataFormat.CSV,
}


def _input_files(path: Path, data_format: DataFormat) -> set[Path]:
    """The files (resolved) that loading ``path`` in ``data_format`` reads or may read.

    A directory stands for its ratings file; either way the side files beside the
    ratings file count too, whether or not they exist yet.
    """
    ratings_file, side_files = _FORMAT_FILES[data_format]
    target = path.expanduser()
    if ratings_file is not None and target.is_dir():
        folder, files = target, {target / ratings_file}
    else:
        folder, files = target.parent, {target}
    files.update(folder / name for name in side_files)
    return {file.resolve() for file in files}


def _dataset_files(name: str) -> set[Path]:
    """The files (resolved) of dataset ``name`` under ``MLREC_DATA_DIR``.

    Every folder the dataset may be found (or downloaded) in counts, with the files
    the dataset requires or downloads and those its format's loader reads. The demo
    has none; an unknown name has none here (loading it reports it).
    """
    spec = next((s for s in DATASETS.values() if name == s.name or name in s.folders), None)
    if spec is None:
        return set()
    data_format = _LOADER_FORMATS.get(spec.loader)
    names = set(spec.required)
    if spec.source is not None:
        names.update(spec.source.required)
    if data_format is not None:
        ratings_file, side_files = _FORMAT_FILES[data_format]
        names.update(side_files)
        if ratings_file is not None:
            names.add(ratings_file)
    data_dir = settings().data_dir.expanduser()
    return {(data_dir / folder / file).resolve() for folder in spec.folders for file in names}


def _same_file(output: Path, inputs: set[Path]) -> Path | None:
    """The input that writing ``output`` would overwrite (same path after resolving
    links, or a hard link to it), or None."""
    resolved = output.expanduser().resolve()
    if resolved in inputs:
        return resolved
    if resolved.is_file():
        for path in inputs:
            try:
                if path.is_file() and os.path.samefile(resolved, path):
                    return path
            except OSError:
                continue
    return None


@app.callback()
def _main() -> None:
    """mlrec: ML recommendation platform."""


@app.command()
def train(
    interactions: InteractionsOption = None,
    data_format: FormatOption = None,
    dataset: DatasetOption = None,
    algorithm: Annotated[
        str, typer.Option(help=f"Algorithm: {', '.join(sorted(ALGORITHMS))}.")
    ] = DEFAULT_ALGORITHM,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Hyper-parameter as key=value (repeat).")
    ] = None,
    output: Annotated[Path, typer.Option(help="Directory to write the model artifact to.")] = Path(
        "model"
    ),
    register: Annotated[
        str | None,
        typer.Option(
            help="Also register the model under this name (letters, digits, '.', '_', '-')."
        ),
    ] = None,
    download: DownloadOption = False,
) -> None:
    """Train a model and save it as an artifact directory."""
    output = output.expanduser()  # as --interactions is: `--output=~/m` is not a "~" folder
    if algorithm not in ALGORITHMS:
        fail(f"unknown algorithm {algorithm!r}; choose from {', '.join(sorted(ALGORITHMS))}")
    if register is not None:
        _check_model_name("--register", register)
    keys = [item.partition("=")[0].strip() for item in param or []]
    repeated = sorted({key for key in keys if key and keys.count(key) > 1})
    if repeated:  # the last would silently win
        fail(f"--param {repeated[0]} is given more than once")
    params = parse_params(ALGORITHMS[algorithm], param or [])  # before a long load
    data = _load(interactions, data_format, dataset, download)
    model = create_model(algorithm, **params)
    try:  # an unusable --output fails before training, not after
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create the --output directory: {describe_os_error(exc)}")
    if register is not None:  # and so do the registry and the models directory
        config = settings()
        stores, registry = _artifact_stores(config), _registry(config)
    console.print(
        f"training [bold]{escape(algorithm)}[/] on {escape(data.name)}: {data.n_users} users, "
        f"{data.n_items} items, {len(data)} interactions"
    )
    started = time.perf_counter()
    with fraction_progress(f"fit {algorithm}") as progress:
        model.fit(data, progress=progress)
    elapsed = time.perf_counter() - started
    sha = model.save(output)
    console.print(f"trained in {elapsed:.2f} s; artifact {escape(str(output))} (sha256 {sha[:12]})")
    if register is not None:
        version = publish_model(model, output, stores, registry, register, data.name)
        console.print(f"registered {escape(version.ref)} ({version.stage})")


@app.command()
def recommend(
    model: Annotated[Path, typer.Option(help="Model artifact directory.")],
    k: Annotated[int, typer.Option(min=1, max=1000, help="Items per user.")] = 10,
    output: Annotated[Path, typer.Option(help="CSV to write.")] = Path("recs.csv"),
    include_seen: Annotated[bool, typer.Option(help="Keep items seen in training.")] = False,
) -> None:
    """Write top-k recommendations for every training user as user_id,item_id,rank,score."""
    started = time.perf_counter()
    model, output = model.expanduser(), output.expanduser()
    recommender = load_model(model)
    users = np.arange(len(recommender.users), dtype=np.int64)
    indices, scores = recommender.recommend_batch(users, k, exclude_seen=not include_seen)
    user_ids = recommender.users.ids()
    item_ids = recommender.items.ids()
    try:
        handle = output.open("w", newline="")
    except OSError as exc:
        fail(f"cannot write --output: {describe_os_error(exc)}")
    written = 0
    with handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "rank", "score"])
        for row, user_id in enumerate(user_ids):
            for rank, (item, score) in enumerate(zip(indices[row], scores[row], strict=True)):
                if np.isfinite(score):
                    writer.writerow([user_id, item_ids[item], rank + 1, f"{score:.6g}"])
                    written += 1
    elapsed = time.perf_counter() - started
    # a user gets fewer than k when fewer items are left to recommend (seen ones excluded)
    shortfall = "" if written == len(user_ids) * k else f" (fewer than {k} for some users)"
    console.print(
        f"wrote {escape(str(output))}: {written} recommendations for {len(user_ids)} users, "
        f"top {k}{shortfall}, in {elapsed:.2f} s",
        soft_wrap=True,
    )


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


@dataclass(frozen=True)
class _TestCoverage:
    """How much of a test set a model can be evaluated on."""

    test_users: int
    known_users: int
    skipped_events: int
    evaluated_events: int
    unseen_item_events: int
    training_events: int
    """Test events of evaluated users that are in the model's training data: ranking
    excludes items a user had in training, so these can never be hit."""


def _known(ids: list[str], id_map: IdMap) -> npt.NDArray[np.bool_]:
    return np.fromiter((external in id_map for external in ids), bool, len(ids))


def _model_index(ids: list[str], id_map: IdMap) -> npt.NDArray[np.int64]:
    """Each external id's index in ``id_map``, -1 where it is absent."""
    return np.fromiter((-1 if (i := id_map.get(e)) is None else i for e in ids), np.int64, len(ids))


def _test_coverage(model: Recommender, test: Interactions) -> _TestCoverage:
    """Test users and events the model knows (by external id), as evaluation matches them."""
    in_test = np.zeros(test.n_users, dtype=bool)
    in_test[test.user_idx] = True
    known_user = _known(test.users.ids(), model.users)
    known_row = known_user[test.user_idx]
    known_item_row = _known(test.items.ids(), model.items)[test.item_idx]
    both = known_row & known_item_row
    rows = _model_index(test.users.ids(), model.users)[test.user_idx[both]]
    cols = _model_index(test.items.ids(), model.items)[test.item_idx[both]]
    trained = model.user_items.tocoo()
    n_items = np.int64(trained.shape[1])
    stored = trained.row.astype(np.int64)[trained.data != 0] * n_items
    stored += trained.col.astype(np.int64)[trained.data != 0]
    seen = np.isin(rows * n_items + cols, stored)
    return _TestCoverage(
        test_users=int(in_test.sum()),
        known_users=int((in_test & known_user).sum()),
        skipped_events=int((~known_row).sum()),
        evaluated_events=int(known_row.sum()),
        unseen_item_events=int((known_row & ~known_item_row).sum()),
        training_events=int(seen.sum()),
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
    """A table of metrics per model; ``title`` and the labels are shown literally."""
    table = Table(title=escape(title))
    table.add_column("model", no_wrap=True)
    names = [n for n in _COLUMNS if rows and n in rows[0][1]]
    for name in names:
        table.add_column(_COLUMNS[name].replace("k", str(k)), justify="right", no_wrap=True)
    for label, metrics in rows:
        table.add_row(
            escape(label),
            *(f"{metrics[n]:.4f}" if n != "fit_s" else f"{metrics[n]:.2f}" for n in names),
        )
    return table


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Model artifact directory.")],
    test: Annotated[Path, typer.Option(help="Held-out interactions (same id space).")],
    data_format: Annotated[
        DataFormat, typer.Option("--format", help="Format of --test.")
    ] = DataFormat.CSV,
    k: Annotated[int, typer.Option(min=1, max=1000, help="Cut-off of the metrics (@k).")] = 10,
) -> None:
    """Print ranking metrics of a model on held-out interactions.

    Test users the model never saw (absent from its training data) cannot be ranked
    for: they are skipped and counted. If no test user is known, the command fails.
    """
    model = model.expanduser()
    recommender = load_model(model)
    held_out = load_interactions(test, data_format.value)
    coverage = _test_coverage(recommender, held_out)
    if coverage.known_users == 0:
        fail(
            f"none of the {coverage.test_users} users in {test} is known to the model "
            f"(trained on {len(recommender.users)} users): nothing to evaluate. Evaluate on "
            "held-out events of the training users, e.g. the --test-output of `mlrec split` "
            "after training on its --train-output."
        )
    if coverage.training_events:
        # printed first, on stderr: the metrics below are lowered by these events
        every = coverage.training_events == coverage.evaluated_events
        warn(
            f"{'all ' if every else ''}{coverage.training_events} of the "
            f"{coverage.evaluated_events} test events of evaluated users are in the model's "
            "training data: those items are excluded from the rankings, so they count as "
            "misses" + (": none can be hit (is --test the training file?)" if every else "")
        )
    metrics = evaluate_model(recommender, _training_log(recommender), held_out, k=k)
    evaluated = int(metrics.pop("users", coverage.known_users))
    console.print(
        _metrics_table(
            f"{recommender.algorithm} on {test.name}", [(recommender.algorithm, metrics)], k
        )
    )
    skipped = coverage.test_users - evaluated
    summary = f"evaluated {evaluated} of {coverage.test_users} test users; skipped {skipped}"
    summary += " unknown to the model"
    if skipped:
        summary += f" ({coverage.skipped_events} events)"
    console.print(summary, soft_wrap=True)
    if coverage.unseen_item_events:
        console.print(
            f"note: {coverage.unseen_item_events} test events of evaluated users are items "
            "the model never saw (they count as misses)",
            soft_wrap=True,
        )


def _weight_strings(weights: npt.NDArray[np.float32]) -> list[str]:
    """Weights as written to CSV: integers when they all are, else float32's shortest text."""
    as_int = weights.astype(np.int64)
    text = as_int.astype(str) if np.array_equal(as_int, weights) else weights.astype(str)
    return [str(value) for value in text]


def _write_csv(path: Path, data: Interactions) -> None:
    """``user_id,item_id,weight,timestamp`` rows with the dataset's own (string) ids."""
    users = np.asarray(data.users.ids(), dtype=object)[data.user_idx].tolist()
    items = np.asarray(data.items.ids(), dtype=object)[data.item_idx].tolist()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "weight", "timestamp"])
        writer.writerows(
            zip(users, items, _weight_strings(data.weights), data.timestamps.tolist(), strict=True)
        )


def _check_output_file(option: str, path: Path) -> None:
    """End the command, before any work, if ``path`` cannot be a file to write."""
    target = path.expanduser()
    if target.is_dir():
        fail(f"cannot write {option}: {target} is a directory")
    if not target.parent.is_dir():
        fail(f"cannot write {option} {target}: {target.parent} is not an existing directory")


def _n_users(data: Interactions) -> int:
    return int(np.count_nonzero(np.bincount(data.user_idx, minlength=data.n_users)))


@app.command()
def split(
    interactions: InteractionsOption = None,
    data_format: FormatOption = None,
    dataset: DatasetOption = None,
    method: Annotated[
        SplitMethod,
        typer.Option(
            help="random: a share of each user's events, at random; leave-last-out: each "
            "user's latest events; time: one global cut, the latest share of all events."
        ),
    ] = SplitMethod.RANDOM,
    ratio: Annotated[
        float | None,
        typer.Option(help="Share held out, in (0, 1), for random and time (default 0.25)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Random seed, for random (default 42).")
    ] = None,
    last: Annotated[
        int | None,
        typer.Option(
            min=1, help="Latest events per user held out, for leave-last-out (default 1)."
        ),
    ] = None,
    train_output: Annotated[Path, typer.Option(help="CSV of the training events.")] = Path(
        "train.csv"
    ),
    test_output: Annotated[Path, typer.Option(help="CSV of the held-out events.")] = Path(
        "test.csv"
    ),
    download: DownloadOption = False,
) -> None:
    """Split interactions into train and test CSVs (user_id,item_id,weight,timestamp).

    Ids are written as they are in the data, so `mlrec train --interactions TRAIN
    --format csv` and `mlrec evaluate --test TEST --format csv` line up.
    """
    train_output, test_output = train_output.expanduser(), test_output.expanduser()
    if ratio is not None and method is SplitMethod.LEAVE_LAST_OUT:
        fail("--ratio does not apply to --method leave-last-out; use --last N")
    if ratio is not None and not 0.0 < ratio < 1.0:
        fail(f"--ratio must be between 0 and 1 (exclusive), got {ratio:g}")
    if seed is not None and method is not SplitMethod.RANDOM:
        fail(f"--seed applies to --method random only; {method.value} is deterministic")
    if last is not None and method is not SplitMethod.LEAVE_LAST_OUT:
        fail("--last applies to --method leave-last-out only; use --ratio")
    if train_output.resolve() == test_output.resolve():
        fail("--train-output and --test-output must be different files")
    if interactions is not None:
        inputs = _input_files(interactions, data_format or DataFormat.CSV)
    elif dataset is not None and data_format is None:
        inputs = _dataset_files(dataset)
    else:
        inputs = set()  # the demo, or options _load refuses
    outputs = (("--train-output", train_output), ("--test-output", test_output))
    for option, output in outputs:
        _check_output_file(option, output)
        overwritten = _same_file(output, inputs)
        if overwritten is not None:
            fail(
                f"refusing to overwrite the input {overwritten} with a split ({option}): "
                "it is a file the dataset is read from; write the split elsewhere"
            )
    data = _load(interactions, data_format, dataset, download)
    share = 0.25 if ratio is None else ratio
    if method is SplitMethod.RANDOM:
        train_part, test_part = random_split_per_user(data, share, 42 if seed is None else seed)
        how = f"random, {share * 100:g}% of each user's events, seed {42 if seed is None else seed}"
    elif method is SplitMethod.LEAVE_LAST_OUT:
        n_last = last or 1
        train_part, test_part = leave_last_out(data, n_last)
        how = f"leave-last-out, each user's latest {n_last}"
    else:
        train_part, test_part = time_split(data, share)
        how = f"time, the latest {share * 100:g}% of all events"
    for part, side in ((train_part, "training"), (test_part, "test")):
        if not len(part):  # nothing written yet: an empty file is useless downstream
            fail(f"the {how} split of {len(data)} events leaves no {side} events; change it")
    for (option, output), part in zip(outputs, (train_part, test_part), strict=True):
        try:
            _write_csv(output, part)
        except OSError as exc:
            fail(f"cannot write {option}: {describe_os_error(exc)}")
    console.print(f"split {escape(data.name)} ({how}): {len(data)} events, {_n_users(data)} users")
    console.print(
        f"  train: {len(train_part)} events, {_n_users(train_part)} users "
        f"-> {escape(str(train_output))}"
    )
    console.print(
        f"  test:  {len(test_part)} events, {_n_users(test_part)} users "
        f"-> {escape(str(test_output))}"
    )
    in_train = np.zeros(data.n_users, dtype=bool)
    in_train[train_part.user_idx] = True
    cold = int(np.count_nonzero(~in_train[np.unique(test_part.user_idx)]))
    if cold:
        console.print(
            f"  note: {cold} test users have no training events; `mlrec evaluate` skips them"
        )


@app.command()
def run(
    dataset: Annotated[str, typer.Option(help="Dataset to train on.")] = "demo",
    k: Annotated[int, typer.Option(min=1, max=100, help="Cut-off of the metrics (@k).")] = 10,
    name: Annotated[str, typer.Option(help="Registry name to publish the best model as.")] = (
        "default"
    ),
    download: DownloadOption = False,
) -> None:
    """Train every algorithm on a 75/25 split, print the evaluation table, publish the best."""
    _check_model_name("--name", name)
    config = settings()
    # an unusable database or models directory fails before training, not after
    registry = _registry(config)
    stores = _artifact_stores(config)
    data = load_named_dataset(dataset, download)
    train_split, test_split = random_split_per_user(data, test_ratio=0.25, seed=42)
    console.print(
        f"dataset {escape(data.name)}: {data.n_users} users, {data.n_items} items, "
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
    # saved beside its final place (same file system), then copied into the stores
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=config.resolved_models_dir) as staging:
        staging_dir = Path(staging) / best_name
        final.save(staging_dir)
        version = publish_model(
            final,
            staging_dir,
            stores,
            registry,
            name=name,
            dataset=data.name,
            metrics={key: round(value, 6) for key, value in best_metrics.items()},
        )
    promoted = registry.promote(version.name, version.version)
    _announce_promotion(config, promoted)
    console.print(
        f"best: [bold]{escape(best_name)}[/] ndcg@{k}={best_metrics['ndcg']:.4f}; "
        f"published {escape(version.ref)} to production "
        f"({escape(str(config.resolved_models_dir))})"
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
        # stored values are shown literally: a name or dataset such as "x[/]" is data,
        # not rich markup (names registered before the name rule may hold anything)
        table.add_row(
            escape(v.ref),
            escape(v.algorithm),
            v.stage.value,
            escape(v.dataset),
            escape(shown),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(v.artifact_sha256[:12]),
        )
    console.print(table)


def _parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME:VERSION``; a malformed or impossible one ends the command."""
    try:
        return parse_model_ref(ref)
    except MlrecError as exc:
        fail(str(exc))


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
        console.print(f"[bold]{key:>10}[/] {escape(str(value))}")


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
    console.print(f"{escape(promoted.ref)} is now {promoted.stage.value}")


def main(argv: list[str] | None = None) -> Any:
    """Entry point that turns mlrec and file errors into one readable line and exit code 2.

    Besides :class:`MlrecError` (bad data, unreachable backends: SQL connection
    failures arrive as ``BackendUnavailableError``), an ``OSError`` such as an
    unwritable ``--output`` or ``MLREC_DATA_DIR`` is reported with the path.
    """
    try:
        return app(argv)
    except MlrecError as exc:
        message = str(exc)
    except OSError as exc:
        message = describe_os_error(exc)
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(2)


@app.command()
def up(
    dataset: Annotated[str, typer.Option(help="Dataset to train on if no model serves.")] = "demo",
    retrain: Annotated[bool, typer.Option(help="Train again even if a model serves.")] = False,
    port: PortOption = None,
    download: DownloadOption = False,
) -> None:
    """Run the whole system locally on embedded defaults: train if needed, then serve.

    With no MLREC_REDIS_URL / MLREC_KAFKA_BOOTSTRAP_SERVERS the API uses the embedded
    SQLite feature store and event log, and runs the stream processor in-process.
    The API's settings apply as with `mlrec serve api` (MLREC_HOST, MLREC_PORT,
    MLREC_WORKERS, and MLREC_MODEL_NAME: the model trained if none is in production).
    """
    from mlrec.cli.serve import api_address, check_api_storage, serve_api
    from mlrec.services.api.config import get_settings

    config = settings()
    api = get_settings()
    host, port = api_address(None, port)  # an unusable address fails before training
    check_api_storage(api)  # and so does storage the API could not start on
    if retrain or _registry(config).production(api.model_name) is None:
        run(dataset=dataset, k=10, name=api.model_name, download=download)
    console.print(f"serving on http://{host}:{port}  (docs: /docs, metrics: /metrics)")
    serve_api(host=None, port=port, workers=None)
