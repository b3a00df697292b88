"""Helpers shared by the CLI's sub-commands: settings, consoles, progress bars, errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from mlrec.core.settings import CommonSettings

__all__ = ["console", "counting_progress", "err_console", "fail", "fraction_progress", "settings"]

# Piped output (files, CI logs) is not wrapped at rich's default of 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


def settings() -> CommonSettings:
    """The process settings (``MLREC_*``).

    pydantic-settings is imported here, not at start-up: it is a third of the CLI's
    import time, and commands like ``recommend`` never read settings.
    """
    from mlrec.core.settings import CommonSettings, load_settings

    return load_settings(CommonSettings)


def fail(message: str) -> None:
    """Print an error and exit with status 2."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@contextmanager
def fraction_progress(description: str) -> Iterator[Callable[[float], None]]:
    """A progress bar driven by a fraction-done callback (model training)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err_console,
    ) as bar:
        task = bar.add_task(description, total=1.0)
        yield lambda fraction: bar.update(task, completed=min(max(fraction, 0.0), 1.0))
        bar.update(task, completed=1.0)


@contextmanager
def counting_progress(description: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar driven by ``(done, total or None)`` (loading, materializing)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
