"""Benchmarks use the same real servers as the integration tests (scripts/services.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = Path(os.environ.get("MLREC_SERVICES_DIR", "/tmp/mlrec-services")) / "env"


def ensure_services() -> dict[str, str]:
    """Start Redis, PostgreSQL, Kafka and Prometheus if needed; return their URLs.

    ``scripts/services.sh up`` is idempotent, so this is cheap when they run already.
    """
    subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "up"],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    env: dict[str, str] = {}
    for line in ENV_FILE.read_text().splitlines():
        key, _, value = line.partition("=")
        if key:
            env[key] = value
    return env


def dataset_dir() -> Path:
    """The shared datasets (never copied into the repo)."""
    return Path(os.environ.get("MLREC_TEST_DATASETS", ROOT.parent / "shared" / "datasets"))
