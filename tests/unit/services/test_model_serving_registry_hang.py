"""A registry lookup that never answers must not stop the model server following
promotions (a connection left hanging by a network partition)."""

from __future__ import annotations

import threading
import time

from mlrec.backends.memory import InMemoryModelRegistry
from mlrec.models.registry import ModelVersion
from mlrec.services.api.model_server import ModelServer
from tests.unit.services.conftest import Harness, wait_for


class HangingRegistry(InMemoryModelRegistry):
    """Delegates to a registry; while ``hang`` is set, a lookup blocks until released."""

    def __init__(self, inner: InMemoryModelRegistry) -> None:
        super().__init__()
        self.inner = inner
        self.hang = threading.Event()
        self.release = threading.Event()
        self.hung = threading.Event()

    def production(self, name: str) -> ModelVersion | None:
        if self.hang.is_set():
            self.hung.set()
            self.release.wait(5)
        return self.inner.production(name)


def test_a_hung_registry_lookup_does_not_stop_later_promotions_from_being_served(
    harness: Harness,
) -> None:
    harness.publish("ease")
    registry = HangingRegistry(harness.registry)
    server = ModelServer(
        registry, harness.store, harness.tmp / "cache", "default", registry_timeout_s=0.3
    )
    assert server.refresh()
    server.start(0.05)
    try:
        registry.hang.set()
        assert registry.hung.wait(3)  # the poller is stuck on a dead connection
        harness.publish("itemknn")
        time.sleep(0.1)
        registry.hang.clear()  # the registry answers again (new connections do)

        def serves_v2() -> bool:
            current = server.current
            return current is not None and current.version.version == 2

        assert wait_for(serves_v2, timeout=3.0)
        assert server.last_error is None
        assert server.current is not None and server.current.version.algorithm == "itemknn"
    finally:
        registry.release.set()
        server.stop()


def test_a_registry_lookup_that_times_out_keeps_the_model_and_says_why(
    harness: Harness,
) -> None:
    harness.publish("ease")
    registry = HangingRegistry(harness.registry)
    server = ModelServer(
        registry, harness.store, harness.tmp / "cache", "default", registry_timeout_s=0.2
    )
    assert server.refresh()
    registry.hang.set()
    try:
        # the lookup hangs until release (5 s): answering "not reachable" means it
        # was given up on, not waited out
        assert not server.refresh()
        assert server.current is not None and server.current.version.version == 1
        assert "registry" in (server.last_error or "")
        assert "0.2 s" in (server.last_error or "")
    finally:
        registry.release.set()
