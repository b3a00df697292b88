"""An artifact that could not be loaded is retried at once when its version is
promoted again (announced), e.g. after the stored copy was repaired."""

from __future__ import annotations

import shutil

from mlrec.backends.sqlite_log import SqliteEventLog
from mlrec.events.log import MODELS_PROMOTED_TOPIC
from mlrec.services.api.promotions import PromotionListener
from tests.unit.services.conftest import Harness, wait_for


def test_a_repromoted_version_whose_artifact_was_repaired_is_loaded_at_the_announcement(
    harness: Harness,
) -> None:
    harness.publish("ease")
    server = harness.model_server()
    assert server.refresh()
    version = harness.publish("itemknn", promote=False)
    sha = harness.registry.get("default", version).artifact_sha256
    stored = harness.store.root / sha / "arrays.npz"
    good = harness.tmp / "good-arrays.npz"
    shutil.copyfile(stored, good)
    stored.write_bytes(stored.read_bytes()[: stored.stat().st_size // 2])  # damaged in the store
    harness.registry.promote("default", version)
    assert not server.refresh()
    assert server.current is not None and server.current.version.version == 1
    assert "does not match" in (server.last_error or "")

    shutil.copyfile(good, stored)  # repaired, then promoted (and announced) again
    log = SqliteEventLog(harness.tmp / "promotions.db", partitions=1)
    log.ensure_topics({MODELS_PROMOTED_TOPIC: 1})
    listener = PromotionListener(lambda: log.follower([MODELS_PROMOTED_TOPIC]), server)
    listener.start()
    try:
        assert wait_for(lambda: listener.follower is not None)
        harness.registry.promote("default", version)
        log.producer().produce(MODELS_PROMOTED_TOPIC, [(b"default", b'{"version": 2}')])

        def serves_it() -> bool:
            current = server.current
            return current is not None and current.version.version == version

        assert wait_for(serves_it, timeout=3.0)
        assert server.last_error is None
    finally:
        listener.stop()
