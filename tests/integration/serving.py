"""What the API integration tests share: a model in production on a real database, and
a port where no server answers."""

from __future__ import annotations

import socket
from pathlib import Path

from mlrec.backends.factory import open_artifact_store, open_model_registry
from mlrec.models.base import Recommender
from mlrec.models.publish import publish_model


def put_in_production(model: Recommender, directory: Path, database_url: str) -> None:
    """Save ``model`` in ``directory``, publish it as ``default`` (artifact in the
    database, so the API fetches it by sha256) and promote it to production."""
    model.save(directory)
    registry = open_model_registry(database_url)
    version = publish_model(
        model, directory, [open_artifact_store(database_url)], registry, "default", "demo"
    )
    registry.promote("default", version.version)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
