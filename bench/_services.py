"""Benchmarks use the same real servers as the integration tests (scripts/services.sh)."""

from __future__ import annotations

import logging
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


def wait_until_ok(url: str, timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers 200 (a server starting up)."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


def publish_production(model: object, work: Path, dataset: str) -> str:
    """Save ``model``, publish it as ``default`` in a fresh SQLite registry, promote it.

    Returns the database URL the API should read (``MLREC_DATABASE_URL``).
    """
    from mlrec.backends.factory import open_artifact_store, open_model_registry
    from mlrec.models.base import Recommender
    from mlrec.models.publish import publish_model

    assert isinstance(model, Recommender)
    database = f"sqlite:///{work / 'meta.db'}"
    model.save(work / "saved")
    registry = open_model_registry(database)
    version = publish_model(
        model, work / "saved", [open_artifact_store(database)], registry, "default", dataset
    )
    registry.promote("default", version.version)
    return database


def quiet_logging() -> None:
    """Warnings only, and none of librdkafka's: a restarting broker makes it log every
    refused connection."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlrec.backends.kafka.librdkafka").setLevel(logging.CRITICAL)


def delete_topics(bootstrap: str, topics: list[str], timeout: float = 30.0) -> None:
    """Delete the bench's own topics from the shared broker, best effort.

    Never raises: a failure only prints a warning (the topic stays behind).
    """
    import sys

    try:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": bootstrap})
        futures = admin.delete_topics(topics, operation_timeout=timeout, request_timeout=timeout)
        for topic, future in futures.items():
            try:
                future.result(timeout)
            except Exception as exc:
                print(f"warning: could not delete topic {topic}: {exc}", file=sys.stderr)
    except Exception as exc:
        print(f"warning: could not delete topics {topics}: {exc}", file=sys.stderr)
