"""The ``mlrec`` command line (typer)."""

from mlrec.cli.main import app, main

__all__ = ["app", "main"]
