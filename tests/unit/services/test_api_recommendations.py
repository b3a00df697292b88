import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlrec.backends.redis_features import RedisOnlineStore
from mlrec.backends.spool import DurableProducer
from mlrec.models.registry import NewModelVersion
from mlrec.services.api.app import create_app
from mlrec.services.api.model_server import ModelServer
from tests.unit.services.conftest import Harness, wait_for


def test_known_user_gets_personal_items_excluding_training_items(
    client: TestClient, harness: Harness
) -> None:
    user = harness.data.users.id(0)
    body = client.get(f"/v1/recommendations/{user}", params={"k": 5}).json()
    assert body["source"] == "personal" and not body["degraded"]
    assert [i["rank"] for i in body["items"]] == [1, 2, 3, 4, 5]
    assert body["model"] == {"name": "default", "version": 1, "algorithm": "ease"}
    seen = set(
        harness.data.subset(harness.data.user_idx == 0).items.ids(
            harness.data.item_idx[harness.data.user_idx == 0]
        )
    )
    assert not seen & {i["item_id"] for i in body["items"]}
    assert all(i["title"] for i in body["items"])
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_a_posted_click_changes_the_next_answer_and_is_excluded(
    client: TestClient, harness: Harness
) -> None:
    before = client.get("/v1/recommendations/new-user", params={"k": 5}).json()
    assert before["source"] == "popular"
    clicked = before["items"][0]["item_id"]
    posted = client.post(
        "/v1/events", json={"user_id": "new-user", "item_id": clicked, "type": "click"}
    )
    assert posted.status_code == 202 and posted.json()["accepted"] == 1

    def personal() -> bool:
        answer = client.get("/v1/recommendations/new-user", params={"k": 5}).json()
        return bool(answer["source"] == "personal")

    assert wait_for(personal)
    after = client.get("/v1/recommendations/new-user", params={"k": 5}).json()
    assert clicked not in {i["item_id"] for i in after["items"]}
    kept = client.get(
        "/v1/recommendations/new-user", params={"k": 80, "exclude_seen": "false"}
    ).json()
    assert clicked in {i["item_id"] for i in kept["items"]}


def test_anonymous_user_scored_from_recent_items(client: TestClient, harness: Harness) -> None:
    recent = harness.data.items.ids([0, 1])
    [answer] = client.post("/v1/recommendations", json={"recent_item_ids": recent, "k": 4}).json()
    assert answer["source"] == "personal" and answer["user_id"] is None
    assert not set(recent) & {i["item_id"] for i in answer["items"]}


def test_batch_of_users_answers_each(client: TestClient, harness: Harness) -> None:
    users = harness.data.users.ids([0, 1, 2])
    answers = client.post("/v1/recommendations", json={"user_ids": users, "k": 3}).json()
    assert [a["user_id"] for a in answers] == users
    assert all(len(a["items"]) == 3 for a in answers)


def test_category_filter_keeps_only_that_category(client: TestClient, harness: Harness) -> None:
    user = harness.data.users.id(0)
    genre = next(iter(harness.data.item_info.values())).categories[0]
    body = client.get(
        f"/v1/recommendations/{user}", params={"k": 5, "filter": f"category:{genre}"}
    ).json()
    assert body["items"]
    for item in body["items"]:
        assert genre in harness.data.item_info[item["item_id"]].categories


def test_bad_requests_get_clear_4xx(client: TestClient) -> None:
    too_many = client.get("/v1/recommendations/u1", params={"k": 101})
    assert too_many.status_code == 422 and "less than or equal to 100" in too_many.text
    assert too_many.json()["detail"][0]["loc"] == ["query", "k"]
    assert client.get("/v1/recommendations/u1", params={"k": 0}).status_code == 422
    bad_filter = client.get("/v1/recommendations/u1", params={"filter": "colour:red"})
    assert bad_filter.status_code == 422 and "bad filter" in bad_filter.text
    empty = client.post("/v1/recommendations", json={"k": 3})
    assert empty.status_code == 422 and "user_ids" in empty.text


def test_similar_items_exclude_the_item_and_unknown_item_is_404(
    client: TestClient, harness: Harness
) -> None:
    item = harness.data.items.id(3)
    body = client.get(f"/v1/items/{item}/similar", params={"k": 5}).json()
    assert len(body["items"]) == 5 and item not in {i["item_id"] for i in body["items"]}
    missing = client.get("/v1/items/no-such-item/similar")
    assert missing.status_code == 404 and "no-such-item" in missing.text


def test_popular_items_are_ranked_by_training_popularity_at_first(client: TestClient) -> None:
    body = client.get("/v1/items/popular", params={"k": 5}).json()
    assert len(body["items"]) == 5
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_unreachable_feature_store_degrades_instead_of_failing(harness: Harness) -> None:
    harness.publish("ease")
    state = harness.state(online=RedisOnlineStore("redis://127.0.0.1:1/0"))
    with TestClient(create_app(state=state)) as client:
        user = harness.data.users.id(0)
        started = time.monotonic()
        body = client.get(f"/v1/recommendations/{user}").json()
        assert time.monotonic() - started < 2.0
        assert body["degraded"] and "feature store unavailable" in body["degraded_reasons"][0]
        assert body["source"] == "personal" and len(body["items"]) == 10
        ready = client.get("/ready").json()
        assert ready["status"] == "degraded" and ready["checks"]["feature_store"] == "unreachable"
    state.close()


def test_an_unreachable_event_log_is_reported_by_ready_before_any_event_is_posted(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.publish("ease")
    state = harness.state()
    with TestClient(create_app(state=state)) as client:
        assert client.get("/ready").json()["checks"]["event_log"] == "ok"
        assert isinstance(state.producer, DurableProducer)
        monkeypatch.setattr(state.producer.primary, "reachable", lambda: False)

        ready = client.get("/ready").json()

        assert ready["status"] == "degraded"
        assert ready["checks"]["event_log"] == "unreachable: events are spooled to disk"
    state.close()


def test_no_model_means_not_ready_and_degraded_answers(harness: Harness) -> None:
    state = harness.state()
    with TestClient(create_app(state=state)) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503
        body = client.get("/v1/recommendations/u1").json()
        # nothing happened yet: no popular items at all, and the reason once
        assert body["degraded"] and body["items"] == [] and body["source"] == "popular"
        assert len(body["degraded_reasons"]) == 1
        assert "no production version" in body["degraded_reasons"][0]
        # with live events, the model-less answer is the live popular items
        events = [{"user_id": f"fan-{n}", "item_id": "i-hit", "type": "click"} for n in range(2)]
        events.append({"user_id": "fan-0", "item_id": "i-also", "type": "click"})
        assert client.post("/v1/events", json={"events": events}).status_code == 202

        def popular_items() -> list[str]:
            answer = client.get("/v1/recommendations/u1").json()
            return [i["item_id"] for i in answer["items"]]

        assert wait_for(lambda: popular_items() == ["i-hit", "i-also"])
        body = client.get("/v1/recommendations/u1").json()
        assert body["degraded"] and body["source"] == "popular" and body["model"] is None
        assert len(body["degraded_reasons"]) == 1
        assert "no production version" in body["degraded_reasons"][0]
        assert [i["rank"] for i in body["items"]] == [1, 2]
        assert body["items"][0]["score"] > body["items"][1]["score"] > 0
    state.close()


def test_promoted_version_is_hot_swapped(harness: Harness, tmp_path: Path) -> None:
    harness.publish("ease")
    state = harness.state()
    with TestClient(create_app(state=state)) as client:
        user = harness.data.users.id(0)
        assert client.get(f"/v1/recommendations/{user}").json()["model"]["version"] == 1
        harness.publish("itemknn")
        assert state.models.refresh()
        body = client.get(f"/v1/recommendations/{user}").json()
        assert body["model"] == {"name": "default", "version": 2, "algorithm": "itemknn"}
    state.close()


def test_a_promotion_message_swaps_the_model_within_a_second(harness: Harness) -> None:
    from mlrec.backends.sqlite_log import SqliteEventLog
    from mlrec.events.log import MODELS_PROMOTED_TOPIC
    from mlrec.services.api.promotions import PromotionListener

    harness.publish("ease")
    state = harness.state()
    log = SqliteEventLog(harness.tmp / "promotions.db", partitions=1)
    log.ensure_topics({MODELS_PROMOTED_TOPIC: 1})
    listener = PromotionListener(lambda: log.follower([MODELS_PROMOTED_TOPIC]), state.models)
    listener.start()
    try:
        assert wait_for(lambda: listener.follower is not None)  # follows from here on
        harness.publish("rp3beta")
        log.producer().produce(MODELS_PROMOTED_TOPIC, [(b"default", b'{"version": 2}')])
        assert wait_for(
            lambda: state.models.current is not None and state.models.current.version.version == 2,
            timeout=1.5,
        )
    finally:
        listener.stop()
        state.close()


def _serving_production(harness: Harness, version: int) -> tuple[ModelServer, list[str]]:
    """``version`` of ``default`` promoted, a model server for it (not refreshed yet),
    and the list of sha256s the server fetches from the store, in order."""
    harness.registry.promote("default", version)
    fetched: list[str] = []
    fetch = harness.store.fetch
    harness.store.fetch = lambda sha256, destination: (  # type: ignore[method-assign]
        fetched.append(sha256),
        fetch(sha256, destination),
    )[-1]
    return harness.model_server(), fetched


def test_an_artifact_that_cannot_be_loaded_is_not_downloaded_again_at_every_poll(
    harness: Harness,
) -> None:
    from mlrec.models.artifacts import Artifact, write_artifact

    unknown = harness.tmp / "from-a-newer-trainer"
    write_artifact(
        unknown, Artifact({"algorithm": "future-algo", "params": {}}, {"x": np.zeros(3)})
    )
    sha = harness.store.put(unknown)
    version = harness.registry.register(
        NewModelVersion("default", "future-algo", sha, str(unknown), {}, "demo", {})
    )
    server, fetched = _serving_production(harness, version.version)

    for _ in range(3):
        assert not server.refresh()

    assert server.current is None and "future-algo" in (server.last_error or "")
    assert len(fetched) <= 2  # the first fetch, and one more in case the copy was damaged


def test_a_missing_artifact_is_not_looked_for_again_at_every_poll(harness: Harness) -> None:
    # a version whose artifact was deleted from the store: each poll (every 5 s, in
    # every worker) used to look for it again and log a warning
    version = harness.registry.register(
        NewModelVersion("default", "ease", "0" * 64, "nowhere", {}, "demo", {})
    )
    server, lookups = _serving_production(harness, version.version)

    for _ in range(3):
        assert not server.refresh()
    assert lookups == ["0" * 64]
    assert "no artifact" in (server.last_error or "")
    assert not server.refresh(announced=True)  # a re-promotion looks again at once
    assert len(lookups) == 2
