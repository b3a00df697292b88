"""Running ``mlrec`` in-process as a user would, through typer's runner."""

from __future__ import annotations

from typer.testing import CliRunner

from mlrec.cli import app

runner = CliRunner()


def invoke(*args: str) -> str:
    """The output of ``mlrec args``, which must succeed."""
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output
