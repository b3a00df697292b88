"""The in-memory online store keeps the online store contract."""

from __future__ import annotations

import pytest

from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.core.clock import Clock
from mlrec.features.online_store import OnlineStore
from tests.contracts.online_store import OnlineStoreContract


class TestInMemoryOnlineStore(OnlineStoreContract):
    @pytest.fixture
    def store(self, clock: Clock) -> OnlineStore:
        return InMemoryOnlineStore(clock=clock)
