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
    return tmp_path / "data"


@pytest.fixture(autouse=True)
def api_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """A free port as MLREC_PORT, on the default host, one worker: `up` and `serve
    api` check their port is free before anything, and 8000 may be another program's."""
    for name in ("MLREC_HOST", "MLREC_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    monkeypatch.setenv("MLREC_PORT", str(port))
    return port
