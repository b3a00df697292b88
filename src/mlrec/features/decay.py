"""Log-space exponential decay: the arithmetic behind time-decayed popularity.

A decayed sum ``S(now) = Σ amount_i · 2^(-(now - t_i)/h)`` is stored as
``L = log Σ amount_i · 2^(t_i/h)``; then ``S(now) = exp(L - now·ln2/h)``. Adding an
event is ``L' = logaddexp(L, log(amount) + t·ln2/h)``, and the order of ``L`` is the
order of ``S`` at any time, so a sorted set ranks by it without rewrites.
Timestamps are taken relative to ``EPOCH`` to keep the exponents small.
"""

from __future__ import annotations

import math

__all__ = ["EPOCH", "add_log_score", "log_score", "value_at"]

EPOCH = 1_700_000_000.0


def log_score(amount: float, timestamp: float, half_life_seconds: float) -> float:
    """The log-space contribution of ``amount`` observed at ``timestamp``."""
    return math.log(amount) + (timestamp - EPOCH) * math.log(2) / half_life_seconds


def add_log_score(
    current: float | None, amount: float, timestamp: float, half_life: float
) -> float:
    """``logaddexp(current, log_score(...))`` without overflow."""
    new = log_score(amount, timestamp, half_life)
    if current is None:
        return new
    high, low = max(current, new), min(current, new)
    return high + math.log1p(math.exp(low - high))


def value_at(log_value: float, now: float, half_life_seconds: float) -> float:
    """The decayed value at ``now`` of a stored log score."""
    return math.exp(log_value - (now - EPOCH) * math.log(2) / half_life_seconds)
