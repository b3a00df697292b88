"""Recommendation quality on protocol A (BASELINES.md section A), beside published figures.

Protocol A: every rating is a positive (binary relevance), a random 25% of each
user's interactions is held out (``random_split_per_user(test_ratio=0.25,
seed=42)``), seen items are removed and every user gets a top-10 over the whole
catalogue. Note: the MS Recommenders notebook stratifies per *item*; the figures
printed beside ours are therefore indicative, not a like-for-like comparison.

Tuning never touches test: each algorithm's small grid is scored on a validation
split carved out of the training split (``random_split_per_user`` of train), the
best setting is refitted on the full training split and only then scored on test.
implicit's ALS and BPR are tuned the same way, on the same split (their rows at
defaults are printed too). The headline is the mlrec model and setting with the
best *validation* NDCG@10, reported at its test figure (never a max over test).

Last.fm has 17,632 artists, most with a single listener: a dense item-item model
(EASE) over all of them takes minutes. On Last.fm every model is therefore
trained on the artists with at least :data:`MIN_LISTENERS` listeners in its
training split (5,764 of them); test rows are all kept, so held-out artists outside
that catalogue count as misses (the table header says so).

Usage::

    python bench/quality.py                 # ml-100k, ml-latest-small, lastfm
    python bench/quality.py --quick         # ml-100k only, small grids
    python bench/quality.py --datasets ml-100k lastfm

The last line is the summary:
``quality: ml100k_ndcg10=<mlrec model chosen on validation, its test NDCG@10>
implicit_als_ndcg10=<implicit ALS tuned on validation> default_ndcg10=<default
algorithm at default parameters>``. The line before it says PASS/FAIL for the two
targets: headline >= 0.50, default within 0.01 of the headline.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from mlrec.core.ids import IdMap
from mlrec.core.interactions import Interactions
from mlrec.data import load_dataset, random_split_per_user
from mlrec.models import ALGORITHMS, DEFAULT_ALGORITHM, Blend, create_model
from mlrec.models.blend import COMPONENTS
from mlrec.models.metrics import evaluate, ranking_metrics

DATA_DIR = Path(os.environ.get("MLREC_DATASETS", "/work/shared/datasets"))
K = 10
SEED = 42
MIN_LISTENERS = 2
BEST_TARGET = 0.50
"""Target for the headline (validation-chosen) NDCG@10 on ML-100K."""
DEFAULT_GAP = 0.01
"""The default algorithm at default parameters must be within this of the headline."""
RESTRICTED = {"lastfm": MIN_LISTENERS}
"""Datasets whose models only see items with at least this many training users."""

PUBLISHED = [  # BASELINES.md A: NDCG@10, P@10, Recall@10, MAP (MS `map`, / |rel|)
    ("BiVAE (published, MS notebook)", 0.468673, 0.408165, 0.220898, 0.143562),
    ("BPR Cornac (published)", 0.444991, 0.388653, 0.216555, 0.133977),
    ("LightGCN (published)", 0.416371, 0.359173, 0.195985, 0.120902),
]

Grid = list[dict[str, Any]]


def product(**axes: list[Any]) -> Grid:
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def grids(quick: bool) -> dict[str, Grid]:
    """The per-algorithm search spaces (defaults are always candidates too)."""
    if quick:
        return {
            "most_popular": [{}],
            "ease": [
                {"l2": 500.0, "dropout": 0.0, "binary": True},  # plain EASE
                *product(l2=[300.0, 500.0], dropout=[0.5, 0.85], binary=[True, False]),
                *product(l2=[300.0, 600.0], dropout=[0.0, 0.5], session_weight=[1.0]),
            ],
            "itemknn": product(neighbours=[100, 200], shrink=[10.0, 50.0]),
            "rp3beta": product(neighbours=[200], alpha=[0.8, 1.0], beta=[0.3, 0.5]),
            "als": product(factors=[16, 32], regularization=[1.0, 10.0], alpha=[5.0]),
            "sequential": product(window=[1, 3], beta=[0.5]),
            "gfcf": product(factors=[32, 64], alpha=[0.3, 1.0]),
            "blend": product(
                rp3beta=[0.0, 0.25],
                itemknn=[0.0],
                sequential=[0.0, 0.1, 0.25],
                als=[0.5, 0.75, 1.0],
                gfcf=[0.0, 0.25],
            ),
        }
    return {
        "most_popular": [{}],
        "ease": [
            *product(l2=[250.0, 500.0, 1000.0], dropout=[0.0], binary=[True]),  # plain EASE
            *product(
                l2=[100.0, 300.0, 1000.0], dropout=[0.5, 0.7, 0.85, 0.9], binary=[True, False]
            ),
            *product(  # with session rows (EASE's session_weight)
                l2=[300.0, 600.0, 1000.0], dropout=[0.0, 0.5], session_weight=[0.5, 1.0, 2.0]
            ),
        ],
        "itemknn": product(
            neighbours=[100, 200, 400], shrink=[10.0, 50.0], weighting=["none", "tfidf"]
        ),
        "rp3beta": product(neighbours=[100, 200], alpha=[0.6, 0.8, 1.0], beta=[0.3, 0.5, 0.7]),
        "als": product(factors=[16, 32, 64], regularization=[1.0, 10.0], alpha=[2.0, 5.0]),
        "sequential": product(window=[1, 3, 5], beta=[0.3, 0.5]),
        "gfcf": product(factors=[16, 32, 64, 128], alpha=[0.3, 1.0]),
        "blend": product(
            rp3beta=[0.0, 0.25],
            itemknn=[0.0, 0.1],
            sequential=[0.0, 0.1, 0.25, 0.5],
            als=[0.5, 0.75, 1.0],
            gfcf=[0.0, 0.25, 0.5],
        ),
    }


@dataclass
class Row:
    name: str
    metrics: dict[str, float]
    seconds: float | None
    note: str = ""


@dataclass
class Result:
    dataset: str
    note: str = ""
    rows: list[Row] = field(default_factory=list)
    default_ndcg: dict[str, float] = field(default_factory=dict)
    tuned_ndcg: dict[str, float] = field(default_factory=dict)
    """Test NDCG@10 of each algorithm's validation-chosen setting (its defaults if untuned)."""
    val_ndcg: dict[str, float] = field(default_factory=dict)
    """Validation NDCG@10 of that setting (only where the dataset selects a best model)."""
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)
    implicit_default_ndcg: dict[str, float] = field(default_factory=dict)
    implicit_tuned_ndcg: dict[str, float] = field(default_factory=dict)

    def best_by_validation(self) -> str | None:
        """The mlrec algorithm whose chosen setting has the best validation NDCG@10."""
        if not self.val_ndcg:
            return None
        order = list(self.val_ndcg)
        return max(order, key=lambda a: (self.val_ndcg[a], -order.index(a)))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def fmt(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


def tune(
    name: str, grid: Grid, fit_train: Interactions, val: Interactions
) -> tuple[dict[str, Any], float]:
    """The grid point with the best validation NDCG@10 (defaults included), and that NDCG."""
    candidates: Grid = [{}] + [g for g in grid if g]
    if name == "blend":
        # fit every component once, then only the weights vary
        full = Blend(**dict.fromkeys(COMPONENTS, 1.0))
        full.fit(fit_train)

        def score_blend(params: dict[str, Any]) -> float:
            defaults = Blend().get_params()
            return evaluate(full.reweight(**{**defaults, **params}), fit_train, val, K)["ndcg"]

        scored = [(score_blend(p), i) for i, p in enumerate(candidates)]
    else:
        scored = [
            (evaluate(create_model(name, **p).fit(fit_train), fit_train, val, K)["ndcg"], i)
            for i, p in enumerate(candidates)
        ]
    best = max(scored, key=lambda pair: (pair[0], -pair[1]))
    return candidates[best[1]], best[0]


def restrict_items(data: Interactions, min_users: int) -> Interactions:
    """``data`` over a smaller catalogue: the items with at least ``min_users`` users.

    Same user map; items are re-indexed, so models see only the kept columns.
    """
    users_per_item = np.bincount(
        np.unique(data.user_idx * data.n_items + data.item_idx) % data.n_items,
        minlength=data.n_items,
    )
    kept = np.flatnonzero(users_per_item >= min_users)
    new_index = np.full(data.n_items, -1, np.int64)
    new_index[kept] = np.arange(len(kept))
    mask = new_index[data.item_idx] >= 0
    ids = data.items.ids()
    return Interactions(
        users=data.users,
        items=IdMap([ids[i] for i in kept]),
        user_idx=data.user_idx[mask],
        item_idx=new_index[data.item_idx[mask]],
        weights=data.weights[mask],
        timestamps=data.timestamps[mask],
        item_info=data.item_info,
        name=data.name,
    )


IMPLICIT = {"als": "implicit ALS", "bpr": "implicit BPR"}


def implicit_grids(quick: bool) -> dict[str, Grid]:
    """implicit's search spaces, tuned exactly as mlrec's (defaults are candidates too).

    Chosen so that the validation optimum lies inside the grid: for ALS on a binary
    ML-100K regularization matters most (best near 50, far above the default 0.01);
    for BPR a learning rate below the default 0.01 (best near 0.003). ALS may also take
    the ratings as confidence (``binary=False``), as mlrec's models may use them as
    weights; BPR only sees which entries exist.
    """
    if quick:
        return {
            "als": product(
                factors=[32, 64],
                regularization=[10.0, 50.0],
                alpha=[5.0, 10.0],
                binary=[True, False],
            ),
            "bpr": product(
                factors=[64], learning_rate=[0.003, 0.01], regularization=[0.01], iterations=[100]
            ),
        }
    return {
        "als": product(
            factors=[32, 64, 128, 256],
            regularization=[1.0, 10.0, 50.0, 100.0],
            alpha=[1.0, 5.0, 10.0, 40.0],
            binary=[True, False],
        ),
        "bpr": product(
            factors=[64, 128],
            learning_rate=[0.001, 0.003, 0.01],
            regularization=[0.01, 0.1],
            iterations=[30, 100, 300],
        ),
    }


def implicit_fit_score(
    kind: str, params: dict[str, Any], train: Interactions, test: Interactions
) -> tuple[dict[str, float], float]:
    """(metrics@K on ``test``, fit seconds) of implicit's ALS or BPR fitted on ``train``.

    ``test`` may use another item map than ``train`` (a restricted catalogue):
    items are matched by id and unknown ones stay relevant but can never be hit.
    """
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    params = dict(params)
    # confidence from the ratings, as mlrec's models may weigh them (``binary``: 0/1)
    matrix = train.to_csr(binary=bool(params.pop("binary", True)))
    lookup = np.asarray([train.items.get(item_id) for item_id in test.items.ids()], dtype=object)
    relevant: dict[int, set[int]] = {}
    for user, item in zip(test.user_idx.tolist(), test.item_idx.tolist(), strict=True):
        found = lookup[item]
        relevant.setdefault(user, set()).add(-1 - item if found is None else int(found))
    users = np.asarray(sorted(relevant), np.int64)
    factory = {"als": AlternatingLeastSquares, "bpr": BayesianPersonalizedRanking}[kind]
    with threadpool_limits(limits=1, user_api="blas"):
        model = factory(random_state=SEED, **params)
        _, seconds = timed(lambda: model.fit(matrix, show_progress=False))
        ids, _scores = model.recommend(users, matrix[users], N=K, filter_already_liked_items=True)
    ranked = [[int(i) for i in row if i >= 0] for row in ids]
    metrics = ranking_metrics(ranked, [relevant[int(u)] for u in users], K, train.n_items)
    return metrics, seconds


def implicit_rows(
    result: Result,
    grids_: dict[str, Grid],
    train: Interactions,
    fit_train: Interactions,
    val: Interactions,
    test: Interactions,
    log: Callable[[str], None],
) -> None:
    """implicit's ALS and BPR at their defaults and tuned on validation, as mlrec's are.

    The grid point (defaults included) with the best validation NDCG@10 is refitted
    on the whole training split and scored once on test.
    """
    for kind, label in IMPLICIT.items():
        grid = grids_.get(kind, [{}])
        metrics, seconds = implicit_fit_score(kind, {}, train, test)
        result.rows.append(Row(f"{label} (defaults)", metrics, seconds))
        result.implicit_default_ndcg[kind] = metrics["ndcg"]
        log(f"[{result.dataset}] {label} defaults ndcg@10={metrics['ndcg']:.4f} ({seconds:.1f}s)")
        if len(grid) <= 1:
            result.implicit_tuned_ndcg[kind] = metrics["ndcg"]
            continue
        candidates: Grid = [{}] + [g for g in grid if g]
        start = time.perf_counter()
        scored = [
            (implicit_fit_score(kind, p, fit_train, val)[0]["ndcg"], i)
            for i, p in enumerate(candidates)
        ]
        tune_seconds = time.perf_counter() - start
        val_ndcg, index = max(scored, key=lambda pair: (pair[0], -pair[1]))
        best = candidates[index]
        if best:
            metrics, seconds = implicit_fit_score(kind, best, train, test)
        result.rows.append(Row(f"{label} (tuned)", metrics, seconds, fmt(best)))
        result.implicit_tuned_ndcg[kind] = metrics["ndcg"]
        log(
            f"[{result.dataset}] {label} tuned {fmt(best)} validation ndcg@10={val_ndcg:.4f} "
            f"test ndcg@10={metrics['ndcg']:.4f} (grid {len(grid)} in {tune_seconds:.0f}s)"
        )


def run_dataset(name: str, quick: bool, log: Callable[[str], None], select: bool = False) -> Result:
    """Every algorithm at its defaults and tuned on validation (ML-100K only), then
    implicit's ALS and BPR the same way. With ``select``, every algorithm's chosen
    setting also gets its validation NDCG (even untuned ones), so that the best model
    can be picked by validation, never by test."""
    data = load_dataset(name, DATA_DIR)
    train, test = random_split_per_user(data, test_ratio=0.25, seed=SEED)
    fit_train, val = random_split_per_user(train, test_ratio=0.25, seed=SEED)
    note = ""
    if name in RESTRICTED:
        min_users = RESTRICTED[name]
        train = restrict_items(train, min_users)
        fit_train = restrict_items(fit_train, min_users)
        note = (
            f"models see the {train.n_items} of {data.n_items} items with >= {min_users} "
            f"training users; all {len(test)} test rows kept (other items are misses)"
        )
    log(
        f"[{name}] {data.n_users} users, {data.n_items} items, {len(data)} events; "
        f"train {len(train)}, test {len(test)} (validation {len(val)} carved from train)"
        + (f"; {note}" if note else "")
    )
    result = Result(name, note)
    # tuned on ML-100K; elsewhere the defaults are only checked (dense EASE is O(items³))
    tuned = name == "ml-100k"
    for algorithm, grid in grids(quick).items():
        if not tuned:
            grid = [{}]
        model, seconds = timed(lambda a=algorithm: create_model(a).fit(train))
        metrics = evaluate(model, train, test, K)
        result.rows.append(Row(f"{algorithm} (defaults)", metrics, seconds))
        result.default_ndcg[algorithm] = metrics["ndcg"]
        log(f"[{name}] {algorithm} defaults ndcg@10={metrics['ndcg']:.4f} ({seconds:.1f}s)")
        if len(grid) <= 1 and not select:
            result.tuned_ndcg[algorithm] = metrics["ndcg"]
            result.chosen[algorithm] = {}
            continue
        ((best, val_ndcg), tune_seconds) = timed(
            lambda a=algorithm, g=grid: tune(a, g, fit_train, val)
        )
        result.val_ndcg[algorithm] = val_ndcg
        result.chosen[algorithm] = best
        if best:
            model, seconds = timed(lambda a=algorithm, b=best: create_model(a, **b).fit(train))
            metrics = evaluate(model, train, test, K)
        result.tuned_ndcg[algorithm] = metrics["ndcg"]
        if len(grid) <= 1:
            log(f"[{name}] {algorithm} defaults validation ndcg@10={val_ndcg:.4f}")
            continue
        result.rows.append(Row(f"{algorithm} (tuned)", metrics, seconds, fmt(best)))
        log(
            f"[{name}] {algorithm} tuned {fmt(best)} validation ndcg@10={val_ndcg:.4f} "
            f"test ndcg@10={metrics['ndcg']:.4f} (grid {len(grid)} in {tune_seconds:.0f}s)"
        )
    implicit_rows(
        result,
        implicit_grids(quick) if tuned else {},
        train,
        fit_train,
        val,
        test,
        log,
    )
    return result


def print_table(result: Result) -> None:
    header = f"{'model':34} {'NDCG@10':>8} {'P@10':>7} {'R@10':>7} {'MAP@10':>7} {'train s':>8}"
    print(f"\n== {result.dataset}: protocol A (random 25% per user, seed 42), top-{K} ==")
    if result.note:
        print(f"({result.note})")
    print(header)
    print("-" * len(header) + "  chosen on validation")
    for row in result.rows:
        m = row.metrics
        seconds = f"{row.seconds:8.2f}" if row.seconds is not None else f"{'':8}"
        print(
            f"{row.name:34} {m['ndcg']:8.4f} {m['precision']:7.4f} {m['recall']:7.4f} "
            f"{m['map']:7.4f} {seconds}  {row.note}"
        )
    if result.dataset == "ml-100k":
        for label, ndcg, precision, recall, map_ in PUBLISHED:
            print(f"{label:34} {ndcg:8.4f} {precision:7.4f} {recall:7.4f} {map_:7.4f}")
        print(
            "(published rows: MS Recommenders notebook, split stratified per item, untuned; "
            "their MAP divides by |relevant|, ours (MAP@10) by min(10, |relevant|))"
        )


def median_seconds(fn: Callable[[], Any], repeat: int = 3) -> float:
    return statistics.median(timed(fn)[1] for _ in range(repeat))


def timings() -> None:
    data = load_dataset("ml-100k", DATA_DIR)
    train, _ = random_split_per_user(data, test_ratio=0.25, seed=SEED)
    users = np.arange(train.n_users, dtype=np.int64)
    ease = create_model("ease").fit(train)
    fit = median_seconds(lambda: create_model("ease").fit(train))
    rec = median_seconds(lambda: ease.recommend_batch(users, k=K))
    default = create_model(DEFAULT_ALGORITHM).fit(train)
    rec_default = median_seconds(lambda: default.recommend_batch(users, k=K))
    with tempfile.TemporaryDirectory() as tmp:
        ease.save(Path(tmp) / "ease")
        default.save(Path(tmp) / "default")
        cli_ease = median_seconds(lambda: run_recommend_cli(Path(tmp) / "ease"))
        cli_default = median_seconds(lambda: run_recommend_cli(Path(tmp) / "default"))
    print("\n== timings on ML-100K training split (median of 3) ==")
    print(f"ease fit: {fit:.2f}s (target < 2 s)")
    print(f"ease recommend top-{K} for all {train.n_users} users: {rec:.3f}s in process")
    print(
        f"{DEFAULT_ALGORITHM} recommend top-{K} for all {train.n_users} users: "
        f"{rec_default:.3f}s in process"
    )
    print(
        f"`mlrec recommend` (new process: start, load, score, write csv) for all "
        f"{train.n_users} users: ease {cli_ease:.2f}s (target < 2 s), "
        f"{DEFAULT_ALGORITHM} {cli_default:.2f}s"
    )


def run_recommend_cli(model_dir: Path) -> None:
    """The whole ``mlrec recommend`` command, as a user runs it."""
    mlrec = Path(sys.executable).parent / "mlrec"
    out = model_dir.parent / f"{model_dir.name}-recs.csv"
    subprocess.run(
        [str(mlrec), "recommend", "--model", str(model_dir), "--k", str(K), "--output", str(out)],
        check=True,
        capture_output=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ML-100K only, small grids")
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="datasets to run (default: ml-100k ml-latest-small lastfm)",
    )
    args = parser.parse_args(argv)
    datasets = args.datasets or (
        ["ml-100k"] if args.quick else ["ml-100k", "ml-latest-small", "lastfm"]
    )
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="implicit")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    main_name = "ml-100k" if "ml-100k" in datasets else datasets[0]
    results = [run_dataset(name, args.quick, log, select=name == main_name) for name in datasets]
    for result in results:
        print_table(result)
    timings()
    main_result = next(r for r in results if r.dataset == main_name)
    best_algorithm = main_result.best_by_validation()
    assert best_algorithm is not None
    best = main_result.tuned_ndcg[best_algorithm]
    default = main_result.default_ndcg[DEFAULT_ALGORITHM]
    chosen = main_result.chosen[best_algorithm]
    print(f"\n== headline ({main_name}): the mlrec model chosen on validation ==")
    print(
        f"best by validation NDCG@10: {best_algorithm} "
        f"({fmt(chosen) if chosen else 'defaults'}): validation "
        f"{main_result.val_ndcg[best_algorithm]:.4f}, test {best:.4f}"
    )
    test_max = max([*main_result.tuned_ndcg.values(), *main_result.default_ndcg.values()])
    print(
        f"(for reference only, not a selection: the highest test NDCG@10 of any row is "
        f"{test_max:.4f})"
    )
    target_best = best >= BEST_TARGET
    target_default = default >= best - DEFAULT_GAP
    print(
        f"target best >= {BEST_TARGET:.2f}: {'PASS' if target_best else 'FAIL'} ({best:.4f}); "
        f"target default ({DEFAULT_ALGORITHM}, default params) within {DEFAULT_GAP:.2f} of "
        f"best: {'PASS' if target_default else 'FAIL'} ({default:.4f}, gap {best - default:+.4f})"
    )
    implicit_als = main_result.implicit_tuned_ndcg["als"]
    print(
        f"quality: ml100k_ndcg10={best:.4f} "
        f"implicit_als_ndcg10={implicit_als:.4f} "
        f"default_ndcg10={default:.4f}"
    )
    return 0


if __name__ == "__main__":
    assert set(grids(False)) <= set(ALGORITHMS), "every grid must name a registered algorithm"
    sys.exit(main())
