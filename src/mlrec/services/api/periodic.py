"""A background thread that calls one action at a fixed interval until stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Periodic"]


class Periodic:
    """Calls ``action`` every ``interval_s`` seconds in a daemon thread.

    Args:
        name: the thread's name (shows in dumps and profiles).
        action: what to call; it must not raise (log and return instead).
        interval_s: seconds between two calls.
        immediately: call once at start too, not only after the first interval.
    """

    def __init__(
        self, name: str, action: Callable[[], object], interval_s: float, immediately: bool = False
    ) -> None:
        self.name = name
        self.action = action
        self.interval_s = interval_s
        self.immediately = immediately
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        if self.immediately:
            self.action()
        while not self._stop.wait(self.interval_s):
            self.action()

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop calling; wait up to ``timeout_s`` for a call in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
