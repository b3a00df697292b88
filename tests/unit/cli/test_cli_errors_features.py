"""``mlrec features`` given files that are not text, or not Parquet: one line, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrec.cli import main
from tests.unit.cli.test_cli_errors import run_failing


@pytest.fixture(autouse=True)
def builtin_views_applied(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["features", "apply"])
    assert exit_info.value.code in (0, None)
    capsys.readouterr()


def test_apply_on_definitions_that_are_not_utf8_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    definitions = tmp_path / "views.yaml"
    definitions.write_bytes(b"\xff\xfeentities: []\n")
    err = run_failing(["features", "apply", str(definitions)], capsys)
    assert str(definitions) in err and "not UTF-8" in err


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("rows.csv", b"user_id,interaction_count,timestamp\n\xff,1,1\n", "not UTF-8"),
        ("rows.parquet", b"user_id,timestamp\nu1,1\n", "Parquet"),
    ],
)
def test_materialize_from_a_source_that_cannot_be_read_is_one_line(
    name: str, content: bytes, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    err = run_failing(["features", "materialize", "user_stats", "--source", str(source)], capsys)
    assert str(source) in err and problem in err
