"""Injectable clocks, so time-dependent code (TTL, staleness) is testable."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["MAX_CLOCK_SKEW_SECONDS", "Clock", "ManualClock", "SystemClock"]

MAX_CLOCK_SKEW_SECONDS = 300.0
"""How far ahead of this host's clock a client's timestamp may be (clocks drift)."""


class Clock(Protocol):
    """Anything that tells the current time in seconds since the epoch."""

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self._now += seconds
