"""What an alert sees of model serving: each load (the first version, each hot-swap)
and each failed load is counted, and a gauge says while the production version is
not the one served."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.unit.services.conftest import Harness


def loads(result: str) -> float:
    value = REGISTRY.get_sample_value("mlrec_api_model_loads_total", {"result": result})
    assert value is not None
    return value


def model_error() -> float | None:
    return REGISTRY.get_sample_value("mlrec_api_model_error")


def test_loads_hot_swaps_and_failed_loads_are_counted_and_a_failure_is_a_gauge(
    harness: Harness,
) -> None:
    # Regression (metrics audit): a hot-swap and a promoted version that could not be
    # loaded were only logged and shown by /ready; no metric an alert could use.
    loaded, failed = loads("loaded"), loads("failed")
    harness.publish("ease")
    server = harness.model_server()

    assert server.refresh()
    assert (loads("loaded"), loads("failed")) == (loaded + 1, failed)
    assert model_error() == 0

    version = harness.publish("itemknn", promote=False)
    stored = harness.store.root / harness.registry.get("default", version).artifact_sha256
    arrays = stored / "arrays.npz"
    good = arrays.read_bytes()
    arrays.write_bytes(good[: len(good) // 2])  # damaged in the store
    harness.registry.promote("default", version)

    assert not server.refresh()
    assert server.current is not None and server.current.version.version == 1
    assert (loads("loaded"), loads("failed")) == (loaded + 1, failed + 1)
    assert model_error() == 1

    arrays.write_bytes(good)  # repaired and announced again: the hot-swap
    assert server.refresh(announced=True)
    assert (loads("loaded"), loads("failed")) == (loaded + 2, failed + 1)
    assert model_error() == 0


def test_the_model_error_gauge_is_set_while_the_registry_does_not_answer(
    harness: Harness,
) -> None:
    harness.publish("ease")
    server = harness.model_server()
    assert server.refresh()
    failed = loads("failed")

    def unreachable(name: str) -> None:
        raise ConnectionError("the database does not answer")

    harness.registry.production = unreachable  # type: ignore[method-assign,assignment]
    assert not server.refresh()

    assert model_error() == 1
    assert loads("failed") == failed  # nothing was loaded: the registry's outage
