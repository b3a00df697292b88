"""The SQLite online store keeps the online store contract, across connections and processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlrec.backends.sqlite_features import SqliteOnlineStore
from mlrec.core.clock import Clock, ManualClock
from mlrec.core.errors import BackendUnavailableError
from mlrec.features.online_store import CounterUpdate, OnlineStore, RowWrite, StoredRow
from tests.contracts.online_store import LONG_TTL, OnlineStoreContract


class TestSqliteOnlineStore(OnlineStoreContract):
    @pytest.fixture
    def store(self, clock: Clock, tmp_path: Path) -> Iterator[OnlineStore]:
        store = SqliteOnlineStore(tmp_path / "features.db", clock=clock)
        yield store
        store.close()


def _prelude(db: Path) -> str:
    """Python source that opens ``store`` on ``db`` (importing only the backend module)."""
    return textwrap.dedent(
        f"""
        import json
        from mlrec.backends.sqlite_features import SqliteOnlineStore
        from mlrec.features.online_store import CounterUpdate, RowWrite
        store = SqliteOnlineStore({str(db)!r})
        """
    )


def _run(code: str, db: Path) -> str:
    """Run ``code`` in a fresh interpreter with ``store`` opened on ``db``; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", _prelude(db) + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.slow
def test_another_process_sees_writes_when_sharing_the_file(tmp_path: Path) -> None:
    db = tmp_path / "features.db"
    store = SqliteOnlineStore(db)
    store.write_rows("profile", [RowWrite("u1", {"a": b"mine"}, 1.5e9)], LONG_TTL, None)

    out = _run(
        """
        [row] = store.read_rows("profile", ["u1"], ["a"])
        print(json.dumps([row.values["a"].decode(), row.written_at]))
        store.write_rows("profile", [RowWrite("u2", {"a": b"theirs"}, 2.0e9)], 3600, None)
        """,
        db,
    )

    assert json.loads(out) == ["mine", 1.5e9]
    assert store.read_rows("profile", ["u2"], ["a"]) == [StoredRow({"a": b"theirs"}, 2.0e9)]


@pytest.mark.slow
def test_concurrent_processes_lose_no_increment_when_writing_together(tmp_path: Path) -> None:
    db = tmp_path / "features.db"
    store = SqliteOnlineStore(db)
    code = """
        for _ in range(100):
            store.increment("counts", [CounterUpdate("u1", {"n": 1.0}, 0.0)], 3600)
        """
    procs = [
        subprocess.Popen([sys.executable, "-c", _prelude(db) + textwrap.dedent(code)])
        for _ in range(2)
    ]
    for _ in range(100):  # this process writes too, while they do
        store.increment("counts", [CounterUpdate("u1", {"n": 1.0}, 0.0)], LONG_TTL)
    assert [p.wait(timeout=120) for p in procs] == [0, 0]

    assert store.read_counters("counts", ["u1"]) == [{"n": 300.0}]


def test_threads_lose_no_increment_when_sharing_a_store(tmp_path: Path) -> None:
    store = SqliteOnlineStore(tmp_path / "features.db")

    def work() -> None:
        for _ in range(50):
            store.increment("counts", [CounterUpdate("u1", {"n": 1.0}, 0.0)], LONG_TTL)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert store.read_counters("counts", ["u1"]) == [{"n": 200.0}]


def test_expired_rows_are_purged_when_view_written_again(tmp_path: Path) -> None:
    clock = ManualClock()
    store = SqliteOnlineStore(tmp_path / "features.db", clock=clock)
    store.write_rows("profile", [RowWrite("old", {"a": b"1"}, clock.now())], 10, None)
    clock.advance(20)
    store.write_rows("profile", [RowWrite("new", {"a": b"2"}, clock.now())], 10, None)

    with sqlite3.connect(tmp_path / "features.db") as raw:
        entities = raw.execute("SELECT entity FROM entities").fetchall()
        fields = raw.execute("SELECT entity FROM fields").fetchall()
    assert entities == fields == [("new",)]


def test_store_raises_unavailable_when_file_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()

    with pytest.raises(BackendUnavailableError):
        SqliteOnlineStore(tmp_path / "dir.db")


def _read_steps(store: SqliteOnlineStore, entity_ids: list[str]) -> int:
    """How many SQLite VM steps (in hundreds) ``read_rows`` takes on this thread."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    # white box: the store's connection of this thread is the one read_rows uses
    conn = store._conn()
    conn.set_progress_handler(count, 100)
    try:
        store.read_rows("profile", entity_ids, ["a"])
    finally:
        conn.set_progress_handler(None, 100)
    return steps


def test_read_rows_looks_entities_up_without_scanning_the_view_when_it_is_large(
    tmp_path: Path,
) -> None:
    store = SqliteOnlineStore(tmp_path / "features.db")
    now = time.time()
    store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, now)], LONG_TTL, None)
    small = _read_steps(store, ["u1", "u2"])
    rows = [RowWrite(f"x{n}", {"a": b"1"}, now) for n in range(20_000)]
    store.write_rows("profile", rows, LONG_TTL, None)

    # a batch read of two entities must not cost in proportion to the view's size
    # (a scan of the expiry index: 0.7 s for 1000 entities of a 1M-entity view)
    assert _read_steps(store, ["u1", "u2"]) <= 2 * small + 5
