"""A small circuit breaker so an unreachable dependency costs one timeout, not one per request."""

from __future__ import annotations

import time

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """After a failure, report the dependency down for ``cooldown`` seconds before retrying.

    While open, callers skip the dependency and degrade at once, so a dead Redis
    does not make every request wait for its socket timeout (no thread pile-up).
    """

    def __init__(self, cooldown_seconds: float = 1.0) -> None:
        self.cooldown = cooldown_seconds
        self._open_until = 0.0
        self.last_error: str | None = None

    @property
    def open(self) -> bool:
        """True while calls should be skipped."""
        return time.monotonic() < self._open_until

    def failure(self, error: str) -> None:
        """Record a failure: open the breaker for the cooldown."""
        self.last_error = error
        self._open_until = time.monotonic() + self.cooldown

    def success(self) -> None:
        """Record a success: close the breaker."""
        self._open_until = 0.0
        self.last_error = None
