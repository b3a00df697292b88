"""Consumers that misbehave on purpose: each wraps a real one and overrides a call."""

from __future__ import annotations

from collections.abc import Sequence

from mlrec.events import EventConsumer, LogRecord


class DelegatingConsumer:
    """An :class:`EventConsumer` passing every call to ``inner``; subclasses override
    the call they make fail."""

    def __init__(self, inner: EventConsumer) -> None:
        self.inner = inner

    def poll(self, max_records: int, timeout_seconds: float) -> list[LogRecord]:
        return self.inner.poll(max_records, timeout_seconds)

    def commit(self, through: Sequence[LogRecord] | None = None) -> None:
        self.inner.commit(through)

    def rewind(self) -> None:
        self.inner.rewind()

    def lag(self) -> int:
        return self.inner.lag()

    def close(self) -> None:
        self.inner.close()
