"""Prometheus metrics of the feature store (``mlrec_features_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["READ_LATENCY", "READ_RESULTS", "STALENESS", "WRITE_LATENCY", "WRITE_ROWS"]

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)

READ_LATENCY = Histogram(
    "mlrec_features_read_duration_seconds",
    "Time to read online features for one call.",
    ["view"],
    buckets=_LATENCY_BUCKETS,
)
WRITE_LATENCY = Histogram(
    "mlrec_features_write_duration_seconds",
    "Time to write one batch of online features.",
    ["view"],
    buckets=_LATENCY_BUCKETS,
)
READ_RESULTS = Counter(
    "mlrec_features_reads_total",
    "Entity reads by result: hit, miss (absent or expired) or stale (older than the TTL).",
    ["view", "result"],
)
WRITE_ROWS = Counter("mlrec_features_rows_written_total", "Entity rows written.", ["view"])
STALENESS = Histogram(
    "mlrec_features_staleness_seconds",
    "Age of the oldest value served per read call.",
    ["view"],
    buckets=(1, 10, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400),
)
