"""Helpers shared by the CLI's sub-commands: settings, consoles, progress bars, errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

if TYPE_CHECKING:
    from mlrec.core.interactions import Interactions
    from mlrec.core.settings import CommonSettings
    from mlrec.data import DatasetSpec

__all__ = [
    "DownloadOption",
    "byte_progress",
    "console",
    "counting_progress",
    "describe_os_error",
    "err_console",
    "fail",
    "fraction_progress",
    "load_named_dataset",
    "settings",
]

DownloadOption = Annotated[
    bool,
    typer.Option(
        "--download",
        help="Fetch a missing --dataset (MovieLens) from GroupLens into MLREC_DATA_DIR "
        "first; its licence terms are printed.",
    ),
]
"""``--download``, on every command that takes ``--dataset``."""

# Piped output (files, CI logs) is not wrapped at rich's default of 80 columns.
# No emoji codes: user data such as a model name "a:b:" must print literally (user
# text in markup strings is also passed through rich.markup.escape).
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(width=_WIDTH, emoji=False)
err_console = Console(stderr=True, width=_WIDTH, emoji=False)


def settings() -> CommonSettings:
    """The process settings (``MLREC_*``).

    pydantic-settings is imported here, not at start-up: it is a third of the CLI's
    import time, and commands like ``recommend`` never read settings.
    """
    from mlrec.core.settings import CommonSettings, load_settings

    return load_settings(CommonSettings)


def fail(message: str) -> NoReturn:
    """Print an error (one line, not wrapped by rich; no markup) and exit with status 2."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=2)


def warn(message: str) -> None:
    """Print a warning on stderr (one line, not wrapped by rich; no markup)."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def describe_os_error(exc: OSError) -> str:
    """One line for a failed file operation: the path(s), the reason, the setting behind it."""
    if exc.filename is None:
        return str(exc)
    path = str(exc.filename)
    if exc.filename2 is not None:
        path += f" -> {exc.filename2}"
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileExistsError) and not Path(str(exc.filename)).is_dir():
        reason = "exists and is not a directory"  # mkdir of a path that is a file
    message = f"{path}: {reason}"
    for variable in ("MLREC_DATA_DIR", "MLREC_MODELS_DIR", "MLREC_MODEL_CACHE_DIR"):
        configured = os.environ.get(variable, "").strip()
        if configured and Path(str(exc.filename)).is_relative_to(Path(configured).expanduser()):
            message += f" ({variable}={configured})"
            break
    return message


def _missing_dataset_message(spec: DatasetSpec, data_dir: Path, download: bool) -> str:
    from mlrec.data import DATA_DIR_ENV

    looked = ", ".join(str(data_dir / folder) for folder in spec.folders)
    target = data_dir / spec.folders[0] / spec.required[0]
    found = f"dataset {spec.name!r} not found: looked for {', '.join(spec.required)} in {looked}."
    elsewhere = f"or set {DATA_DIR_ENV} to the directory that holds it."
    if spec.source is None:
        cannot = "It cannot be downloaded automatically: " if download else ""
        return (
            f"{found} {cannot}download it by hand from {spec.homepage} and extract it so "
            f"that {target} exists, {elsewhere}"
        )
    return (
        f"{found} Run again with --download to fetch it from {spec.source.url} "
        f"(its licence terms are printed first), {elsewhere}"
    )


def load_named_dataset(name: str, download: bool = False) -> Interactions:
    """Dataset ``name`` from ``MLREC_DATA_DIR``; with ``download``, fetched first if missing.

    A missing dataset ends the command with a message saying how to get it from the
    command line (``--download``), not from Python.
    """
    from mlrec.data import DATASETS, find_dataset, load_dataset

    data_dir = settings().data_dir
    if name != "demo" and find_dataset(name, data_dir) is None:  # unknown names raise here
        spec = next(s for s in DATASETS.values() if name == s.name or name in s.folders)
        if not download or spec.source is None:
            fail(_missing_dataset_message(spec, data_dir, download))
        with byte_progress(f"download {spec.name}") as progress:
            return load_dataset(name, data_dir, download=download, progress=progress)
    return load_dataset(name, data_dir, download=download)


def _bar(*counts: ProgressColumn) -> Progress:
    """A progress bar on stderr: description, bar, then ``counts``, then time elapsed."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        *counts,
        TimeElapsedColumn(),
        console=err_console,
    )


@contextmanager
def byte_progress(description: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar of bytes (size, speed) driven by ``(received, total or None)``."""
    with _bar(DownloadColumn(), TransferSpeedColumn()) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def fraction_progress(description: str) -> Iterator[Callable[[float], None]]:
    """A progress bar driven by a fraction-done callback (model training)."""
    with _bar(TextColumn("{task.percentage:>3.0f}%")) as bar:
        task = bar.add_task(description, total=1.0)
        yield lambda fraction: bar.update(task, completed=min(max(fraction, 0.0), 1.0))
        bar.update(task, completed=1.0)


@contextmanager
def counting_progress(description: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar driven by ``(done, total or None)`` (loading, materializing)."""
    with _bar(MofNCompleteColumn()) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
