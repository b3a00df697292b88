"""The Redis online store over a unix socket (``unix:///path``), as settings accept."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlrec.backends.redis_features import RedisOnlineStore
from mlrec.features.online_store import RowWrite, StoredRow

pytestmark = pytest.mark.integration


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    """A throwaway redis-server listening only on a unix socket."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: run scripts/services.sh up")
    path = tmp_path / "redis.sock"
    process = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(path), "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        yield path
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_unix_socket_url_reads_and_writes(socket_path: Path) -> None:
    store = RedisOnlineStore(f"unix://{socket_path}", key_prefix="unix")
    try:
        assert store.ping()
        store.write_rows("profile", [RowWrite("u1", {"a": b"1"}, 1.7e9)], 60, None)

        assert store.read_rows("profile", ["u1"], ["a"]) == [StoredRow({"a": b"1"}, 1.7e9)]
    finally:
        store.close()
