"""Periodic calls its action at its interval until stopped."""

from __future__ import annotations

import threading

from mlrec.services.api.periodic import Periodic
from tests.unit.services.conftest import wait_for


def test_calls_repeat_at_the_interval_and_end_when_stopped() -> None:
    calls: list[int] = []
    periodic = Periodic("test", lambda: calls.append(1), 0.01)
    periodic.start()
    assert wait_for(lambda: len(calls) >= 3)
    periodic.stop()
    done = len(calls)
    assert not any(t.name == "test" for t in threading.enumerate())
    assert len(calls) == done


def test_immediately_calls_once_at_start() -> None:
    called = threading.Event()
    periodic = Periodic("test-now", called.set, 3600, immediately=True)
    periodic.start()
    try:
        assert called.wait(2.0)
    finally:
        periodic.stop()
