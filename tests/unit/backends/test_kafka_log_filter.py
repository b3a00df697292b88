"""librdkafka's repeated lines are rate-limited, with a count of those held back."""

from __future__ import annotations

import logging

from mlrec.backends.kafka import RepeatFilter


def record(fac: str, client: str, text: str) -> logging.LogRecord:
    # confluent-kafka logs as logger.log(level, "%s [%s] %s", fac, client, text)
    return logging.LogRecord(
        "k", logging.ERROR, __file__, 1, "%s [%s] %s", (fac, client, text), None
    )


def test_a_repeated_line_passes_once_per_interval_then_reports_how_many_were_held() -> None:
    now = [100.0]
    gate = RepeatFilter(interval=30.0, clock=lambda: now[0])
    first = record("FAIL", "consumer-1", "Connect failed: Connection refused")
    assert gate.filter(first)
    assert not any(gate.filter(record("FAIL", "consumer-1", "Connect failed")) for _ in range(9))

    now[0] += 29.9
    assert not gate.filter(record("FAIL", "consumer-1", "still failing"))
    now[0] += 0.2
    later = record("FAIL", "consumer-1", "Connect failed again")
    assert gate.filter(later)
    assert "and 10 similar lines in the last 30 s" in later.getMessage()


def test_lines_of_other_clients_or_facilities_are_not_held_back() -> None:
    gate = RepeatFilter(interval=60.0)
    assert gate.filter(record("FAIL", "consumer-1", "x"))
    assert gate.filter(record("FAIL", "producer-2", "x"))
    assert gate.filter(record("REQTMOUT", "consumer-1", "x"))
    assert not gate.filter(record("FAIL", "consumer-1", "y"))
