"""Every CLI test runs with its own data directory and the default metadata DB in it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLREC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MLREC_DATABASE_URL", raising=False)
    monkeypatch.delenv("MLREC_MODELS_DIR", raising=False)
    # `up` and `serve api` check their port is free before anything: not 8000, which
    # another program on the machine may hold
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("MLREC_PORT", str(probe.getsockname()[1]))
    return tmp_path / "data"
