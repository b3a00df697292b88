"""What every SQLite file of mlrec needs when a connection opens it."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["enable_wal"]


def enable_wal(conn: Any, timeout_s: float = 10.0) -> None:
    """Switch the database to WAL (readers never block the writer).

    Retried while the file is locked: when several processes create or first open a
    file at once (uvicorn workers starting together), the switch can answer
    "database is locked" at once, without waiting on the busy timeout.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.1)
