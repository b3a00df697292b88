"""An item filter's values are chosen by the client, up to a whole request body (4 MiB
by default: ~500,000 ids). The service caches item masks per filter (257 of them);
before the fix each cache key held the filter's whole set of values, so a few hundred
requests with large filters kept gigabytes in memory for good (reproduced: ~54 MB kept
per 3.7 MiB filter). Large filters are now answered without being cached."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from fastapi.testclient import TestClient

from mlrec.services.api.app import create_app
from tests.unit.services.conftest import Harness


def _cached_filters(client: TestClient) -> list[tuple[str, frozenset[str]]]:
    masks = client.app.state.mlrec.service._masks[1]  # type: ignore[attr-defined]
    return list(masks)


def test_a_large_filter_is_answered_but_not_kept_in_the_mask_cache(harness: Harness) -> None:
    harness.publish("ease")
    state = harness.state()
    wanted = harness.data.items.ids([3])[0]
    recent = harness.data.items.ids([0, 1])
    large = "items:" + "|".join([wanted, *(f"not-an-item-{i}" for i in range(20_000))])
    try:
        with TestClient(create_app(state=state)) as client:
            for path, body in (
                ("/v1/recommendations", {"recent_item_ids": recent, "k": 5, "filter": large}),
                ("/v1/recommendations", {"user_ids": ["new-user"], "k": 5, "filter": large}),
            ):
                answer = client.post(path, json=body)
                assert answer.status_code == 200, answer.text
                assert [i["item_id"] for i in answer.json()[0]["items"]] == [wanted]
            assert _cached_filters(client) == []

            small = f"items:{wanted}|{harness.data.items.ids([4])[0]}"
            answer = client.post(
                "/v1/recommendations", json={"recent_item_ids": recent, "k": 5, "filter": small}
            )
            assert answer.status_code == 200
            assert len(_cached_filters(client)) == 1  # common small filters stay cached
    finally:
        state.close()


def test_a_batch_request_parses_its_filter_and_builds_its_mask_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the fix a batch of 100 users parsed the filter (and hashed its values)
    once per user on the event loop: one 3.7 MiB request cost ~20 s of CPU."""
    from mlrec.services.api import service as service_module
    from mlrec.services.api.routes import recommendations

    parses: list[str | None] = []
    masks: list[int] = []
    parse = service_module.parse_filter
    mask = getattr(service_module.RecommendationService, "_mask", None)

    def counting_parse(text: str | None) -> service_module.Filter | None:
        parses.append(text)
        return parse(text)

    def counting_mask(
        served: service_module.ServedModel, kind: str, values: set[str]
    ) -> npt.NDArray[np.bool_]:
        masks.append(len(values))
        assert mask is not None
        return mask(served, kind, values)

    monkeypatch.setattr(service_module, "parse_filter", counting_parse)
    monkeypatch.setattr(recommendations, "parse_filter", counting_parse, raising=False)
    monkeypatch.setattr(
        service_module.RecommendationService, "_mask", staticmethod(counting_mask), raising=False
    )
    harness.publish("ease")
    state = harness.state()
    known = harness.data.users.ids()[:50]
    users = [*known, *(f"new-user-{i}" for i in range(50))]
    wanted = harness.data.items.ids([3, 4])
    large = "items:" + "|".join([*wanted, *(f"not-an-item-{i}" for i in range(5_000))])
    try:
        with TestClient(create_app(state=state)) as client:
            answer = client.post(
                "/v1/recommendations", json={"user_ids": users, "k": 5, "filter": large}
            )
    finally:
        state.close()

    assert answer.status_code == 200, answer.text
    assert len(answer.json()) == 100
    assert all({i["item_id"] for i in a["items"]} <= set(wanted) for a in answer.json())
    assert len(parses) == 1
    assert masks == [5_002]
