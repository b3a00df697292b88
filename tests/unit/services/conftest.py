"""An API wired to real embedded components (memory/SQLite), no servers needed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlrec.backends.memory import InMemoryModelRegistry
from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.backends.spool import DurableProducer
from mlrec.backends.sqlite_log import SqliteEventLog
from mlrec.data import make_demo
from mlrec.events.log import INTERACTIONS_TOPIC
from mlrec.events.processor import StreamProcessor
from mlrec.features.builtin import BUILTIN_VIEWS
from mlrec.features.online_store import OnlineStore
from mlrec.features.realtime import RealtimeFeatures
from mlrec.features.store import FeatureStore
from mlrec.models import create_model
from mlrec.models.artifact_store import LocalArtifactStore
from mlrec.models.publish import publish_model
from mlrec.services.api.app import create_app
from mlrec.services.api.batching import ScoringBatcher
from mlrec.services.api.config import ApiSettings
from mlrec.services.api.model_server import ModelServer
from mlrec.services.api.service import RecommendationService
from mlrec.services.api.state import ApiState
from mlrec.services.stream import realtime_sink

ADMIN = "s3cret"


class Harness:
    """Builds an ApiState from parts a test may swap (e.g. an unreachable online store)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data = make_demo(n_users=120, n_items=80, seed=7)
        self.registry = InMemoryModelRegistry()
        self.store = LocalArtifactStore(tmp / "artifacts")
        self.settings = ApiSettings(
            data_dir=tmp, admin_token=ADMIN, batch_size=8, batch_wait_ms=1.0, max_k=100
        )

    def publish(self, algorithm: str = "ease", promote: bool = True, **params: object) -> int:
        model = create_model(algorithm, **params).fit(self.data)
        saved = self.tmp / f"saved-{algorithm}-{len(self.registry.list())}"
        model.save(saved)
        version = publish_model(model, saved, [self.store], self.registry, "default", "demo")
        if promote:
            self.registry.promote("default", version.version)
        return version.version

    def model_server(self) -> ModelServer:
        """A model server of the name ``default`` on this registry and store (not
        refreshed yet)."""
        return ModelServer(self.registry, self.store, self.tmp / "cache", "default")

    def state(self, online: OnlineStore | None = None) -> ApiState:
        online = online or InMemoryOnlineStore()
        models = self.model_server()
        models.refresh()
        realtime = RealtimeFeatures(online)
        log = SqliteEventLog(self.tmp / "events.db", partitions=2)
        log.ensure_topics({INTERACTIONS_TOPIC: 2})
        producer = DurableProducer(log.producer(), self.tmp / "spool")
        processor = StreamProcessor(
            log.consumer("api-test", [INTERACTIONS_TOPIC]),
            realtime_sink(realtime),
            log.producer(),
            poll_timeout=0.01,
        )
        service = RecommendationService(models, realtime, ScoringBatcher(8, 0.001), 50)
        state = ApiState(
            self.settings,
            models,
            FeatureStore(online, BUILTIN_VIEWS),
            realtime,
            service,
            producer,
            processor,
        )
        state.closers.append(producer.close)
        state.start_processor()
        return state


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient]:
    harness.publish("ease")
    state = harness.state()
    with TestClient(create_app(state=state)) as test_client:
        yield test_client
    state.close()


def wait_for(predicate: Callable[[], object], timeout: float = 3.0) -> bool:
    """Whether ``predicate`` became true within ``timeout`` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
