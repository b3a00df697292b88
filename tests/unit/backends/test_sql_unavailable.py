"""A metadata database that cannot be reached after a store was opened (it went away
after the start-up check) fails each call with BackendUnavailableError, one line
naming the database, not with SQLAlchemy's OperationalError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlrec.backends.sql.artifact_store import SqlArtifactStore
from mlrec.backends.sql.feature_registry import SqlFeatureRegistry
from mlrec.backends.sql.registry import SqlModelRegistry
from mlrec.core.errors import BackendUnavailableError

# Port 1 on loopback: refused at once, no network involved.
UNREACHABLE = "postgresql://nobody:s3cret@127.0.0.1:1/x"

CALLS: dict[str, Callable[[Path], object]] = {
    "registry list": lambda _: SqlModelRegistry(UNREACHABLE).list(),
    "registry get": lambda _: SqlModelRegistry(UNREACHABLE).get("m", 1),
    "registry promote": lambda _: SqlModelRegistry(UNREACHABLE).promote("m", 1),
    "artifact has": lambda _: SqlArtifactStore(UNREACHABLE).has("0" * 64),
    "artifact fetch": lambda tmp: SqlArtifactStore(UNREACHABLE).fetch("0" * 64, tmp / "a"),
    "feature views": lambda _: SqlFeatureRegistry(UNREACHABLE).list_views(),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_store_call_on_an_unreachable_database_is_backend_unavailable(
    call: Callable[[Path], object], tmp_path: Path
) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        call(tmp_path)
    message = str(info.value)
    assert message.startswith("cannot connect to the database postgresql+psycopg://nobody:***@")
    assert "s3cret" not in message and "\n" not in message
