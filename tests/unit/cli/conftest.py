"""Every CLI test runs with its own data directory and the default metadata DB in it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLREC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MLREC_DATABASE_URL", raising=False)
    monkeypatch.delenv("MLREC_MODELS_DIR", raising=False)
    return tmp_path / "data"
