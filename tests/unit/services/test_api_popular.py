"""Popular items: live and training popularity merged on one time-decayed scale."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mlrec.backends.memory_features import InMemoryOnlineStore
from mlrec.core.clock import ManualClock
from mlrec.features.realtime import DAY, Interaction, RealtimeFeatures
from mlrec.services.api.app import create_app
from mlrec.services.api.batching import ScoringBatcher
from mlrec.services.api.model_server import ServedModel
from mlrec.services.api.service import RecommendationService
from tests.unit.services.conftest import Harness, wait_for


@pytest.fixture
def service(harness: Harness) -> Iterator[RecommendationService]:
    """A service whose clock stands two half-lives (days) after the model was trained."""
    harness.publish("ease")
    models = harness.model_server()
    assert models.refresh() and models.current is not None
    clock = ManualClock(models.current.version.created_at.timestamp() + 2 * DAY)
    realtime = RealtimeFeatures(InMemoryOnlineStore(clock), clock=clock)
    yield RecommendationService(models, realtime, ScoringBatcher(8, 0.001), 50)


def _served(service: RecommendationService) -> ServedModel:
    assert service.models.current is not None
    return service.models.current


def _by_training(served: ServedModel) -> list[str]:
    """Item ids by training popularity, best first (ties by id)."""
    counts = served.popularity
    order = sorted(range(len(counts)), key=lambda i: (-float(counts[i]), served.item_ids[i]))
    return [served.item_ids[i] for i in order]


def _clock(service: RecommendationService) -> ManualClock:
    assert service.realtime is not None and isinstance(service.realtime.clock, ManualClock)
    return service.realtime.clock


def _record(service: RecommendationService, item: str, n: int, at: float) -> None:
    assert service.realtime is not None
    service.realtime.record(
        [Interaction(f"u-{item}-{j}", item, at, event_id=f"e-{item}-{at}-{j}") for j in range(n)]
    )


def test_popular_merges_live_and_training_counts_on_one_decayed_scale(
    service: RecommendationService,
) -> None:
    served = _served(service)
    now = _clock(service).now()
    ranked = _by_training(served)
    best, faded, hot = ranked[0], ranked[-1], ranked[len(ranked) // 2]
    _record(service, faded, 1, now - 20 * DAY)  # one old event: decayed to ~1e-6
    _record(service, hot, 30, now)  # thirty events now

    answer = service.popular(10)

    scores = [item.score for item in answer.items]
    assert scores == sorted(scores, reverse=True)
    assert [item.rank for item in answer.items] == list(range(1, 11))
    assert not answer.reasons
    ids = [item.item_id for item in answer.items]
    assert faded not in ids  # its lone old event no longer counts for anything
    assert best in ids
    # training counts are interactions at training time, two half-lives ago: x 1/4
    counts = dict(zip(served.item_ids, served.popularity.tolist(), strict=True))
    weight = 0.25
    expected = {item: counts[item] * weight for item in counts}
    expected[hot] += 30.0
    top = sorted(expected.items(), key=lambda kv: (-kv[1], -counts[kv[0]], kv[0]))[:10]
    assert ids == [item for item, _ in top]
    assert scores == pytest.approx([score for _, score in top], rel=1e-5)
    assert answer.items[ids.index(hot)].score == pytest.approx(30.0 + counts[hot] * weight)


def test_popular_decays_training_counts_with_the_model_age(
    service: RecommendationService,
) -> None:
    served = _served(service)
    hot = _by_training(served)[-1]
    clock = _clock(service)
    _record(service, hot, 3, clock.now())
    early = {i.item_id: i.score for i in service.popular(5).items}
    clock.advance(3 * DAY)  # the live events and the training counts age alike
    later = service.popular(5)
    assert [i.item_id for i in later.items] == list(early)
    assert [i.score for i in later.items] == pytest.approx(
        [score / 8 for score in early.values()], rel=1e-5
    )


def test_popular_respects_filter_and_exclusions_and_still_fills_k(
    service: RecommendationService, harness: Harness
) -> None:
    served = _served(service)
    genre = next(iter(harness.data.item_info.values())).categories[0]
    in_genre = [i for i in _by_training(served) if genre in served.model.item_info[i].categories]
    outside = next(i for i in _by_training(served) if i not in in_genre)
    now = _clock(service).now()
    _record(service, outside, 50, now)  # live, but not in the category
    _record(service, in_genre[-1], 50, now)  # live and in the category: first
    excluded = set(in_genre[:2])

    answer = service.popular(5, ("category", {genre}), exclude=excluded)

    ids = [i.item_id for i in answer.items]
    assert len(ids) == 5 and ids[0] == in_genre[-1]
    assert all(genre in served.model.item_info[i].categories for i in ids)
    assert not excluded & set(ids)
    scores = [i.score for i in answer.items]
    assert scores == sorted(scores, reverse=True)


def test_a_model_without_a_usable_training_time_counts_in_full(
    service: RecommendationService,
) -> None:
    served = _served(service)
    clock = _clock(service)
    future = served.version.created_at.replace(year=served.version.created_at.year + 1)
    service.models.current = dataclasses.replace(
        served, version=dataclasses.replace(served.version, created_at=future)
    )
    answer = service.popular(3)
    counts = sorted(served.popularity.tolist(), reverse=True)[:3]
    assert [i.score for i in answer.items] == pytest.approx(counts)
    assert clock.now() < future.timestamp()


def test_a_very_old_model_keeps_its_training_order_below_live_items(
    service: RecommendationService,
) -> None:
    served = _served(service)
    clock = _clock(service)
    clock.advance(5000 * DAY)  # 2^-5000 underflows to 0 even in float64
    ranked = _by_training(served)
    _record(service, ranked[-1], 1, clock.now())
    answer = service.popular(4)
    assert [i.item_id for i in answer.items] == [ranked[-1], *ranked[:3]]
    assert [i.score for i in answer.items] == pytest.approx([1.0, 0.0, 0.0, 0.0])


def test_popular_reads_a_bounded_number_of_live_items(service: RecommendationService) -> None:
    assert service.realtime is not None
    asked: list[int] = []
    original = service.realtime.popular_items

    def spy(n: int = 10) -> list[tuple[str, float]]:
        asked.append(n)
        return original(n)

    service.realtime.popular_items = spy  # type: ignore[method-assign]
    service.popular(3)
    service.popular(50)
    assert asked == [100, 200]


# -- through the API -----------------------------------------------------------------


def test_popular_endpoint_is_degraded_while_the_breaker_is_open(client: TestClient) -> None:
    service: RecommendationService = client.app.state.mlrec.service  # type: ignore[attr-defined]
    service.breaker.failure("redis down: connection refused")
    body = client.get("/v1/items/popular", params={"k": 5}).json()
    assert body["degraded"] is True
    assert body["degraded_reasons"] == ["feature store unavailable: redis down: connection refused"]
    assert len(body["items"]) == 5  # training popularity still answers
    # the recommendation fallback reads the breaker twice but reports it once
    rec = client.get("/v1/recommendations/someone-new", params={"k": 5}).json()
    assert rec["source"] == "popular" and len(rec["items"]) == 5
    assert rec["degraded_reasons"] == ["feature store unavailable: redis down: connection refused"]


def test_popular_fallback_excludes_seen_items_and_still_fills_k(client: TestClient) -> None:
    # an item the model has never seen (the user's history cannot be scored), clicked
    # more often than any item was in training: the most popular item now
    click = {"user_id": "fresh-user", "item_id": "brand-new-item", "type": "click"}
    posted = client.post("/v1/events", json={"events": [click] * 300})
    assert posted.status_code == 202

    def live() -> bool:
        body = client.get("/v1/items/popular", params={"k": 5}).json()
        return "brand-new-item" in {i["item_id"] for i in body["items"]}

    assert wait_for(live)
    body = client.get("/v1/recommendations/fresh-user", params={"k": 5}).json()
    assert body["source"] == "popular" and not body["degraded"]
    ids = [i["item_id"] for i in body["items"]]
    assert len(ids) == 5 and "brand-new-item" not in ids
    assert [i["rank"] for i in body["items"]] == [1, 2, 3, 4, 5]
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_no_model_answers_live_popular_items_degraded(harness: Harness) -> None:
    state = harness.state()
    with TestClient(create_app(state=state)) as client:
        events = [
            {"user_id": f"fan-{n}", "item_id": "i-hit", "type": "click"} for n in range(3)
        ] + [{"user_id": "u1", "item_id": "i-seen", "type": "click"}]
        assert client.post("/v1/events", json={"events": events}).status_code == 202

        def ready() -> bool:
            body = client.get("/v1/items/popular").json()
            return {"i-hit", "i-seen"} <= {i["item_id"] for i in body["items"]}

        assert wait_for(ready)
        popular = client.get("/v1/items/popular").json()
        assert popular["degraded"] and popular["model"] is None
        assert [i["item_id"] for i in popular["items"]] == ["i-hit", "i-seen"]
        assert len(popular["degraded_reasons"]) == 1
        assert "no production version" in popular["degraded_reasons"][0]
        body = client.get("/v1/recommendations/u1").json()
        assert body["source"] == "popular" and body["degraded"]
        assert [i["item_id"] for i in body["items"]] == ["i-hit"]  # u1's own item excluded
        assert len(body["degraded_reasons"]) == 1
        assert "no production version" in body["degraded_reasons"][0]
    state.close()


def test_popular_breaks_training_count_ties_by_item_id_at_every_k(
    service: RecommendationService,
) -> None:
    # the k-th place often falls inside a run of equal training counts: the items
    # kept must be the first by id, so each answer is a prefix of the longer ones
    served = _served(service)
    ranked = _by_training(served)
    counts = dict(zip(served.item_ids, served.popularity.tolist(), strict=True))
    tied = [k for k in range(1, len(ranked)) if counts[ranked[k - 1]] == counts[ranked[k]]]
    assert tied, "the training data has no tied counts to test with"
    for k in tied:
        assert [i.item_id for i in service.popular(k).items] == ranked[:k], k


def test_popular_ties_by_item_id_under_a_filter_and_exclusions(
    service: RecommendationService,
) -> None:
    served = _served(service)
    ranked = _by_training(served)
    excluded = set(ranked[:3:2])
    allowed = set(ranked[: len(ranked) // 2]) - {ranked[1]}
    expected = [i for i in ranked if i in allowed and i not in excluded]
    for k in range(1, len(expected) + 1):
        answer = service.popular(k, ("items", allowed), exclude=excluded)
        assert [i.item_id for i in answer.items] == expected[:k], k


def test_an_items_filter_keeps_the_live_items_it_names_that_the_model_does_not_know(
    service: RecommendationService,
) -> None:
    # items:<id> names items outright: a live item launched after training passes it
    served = _served(service)
    known = _by_training(served)[0]
    _record(service, "launched-today", 5, _clock(service).now())
    answer = service.popular(2, ("items", {"launched-today", known}))
    assert {i.item_id for i in answer.items} == {"launched-today", known}
    assert service.popular(2, ("items", {"launched-today"}), exclude={"launched-today"}).items == []
    genre = next(iter(served.model.item_info.values())).categories[0]
    by_genre = service.popular(50, ("category", {genre}))
    assert "launched-today" not in {i.item_id for i in by_genre.items}


def test_without_a_model_an_items_filter_ranks_the_live_items_it_names(
    service: RecommendationService,
) -> None:
    now = _clock(service).now()
    _record(service, "hit", 3, now)
    _record(service, "other", 5, now)
    service.models.current = None
    answer = service.popular(5, ("items", {"hit", "absent"}))
    assert [i.item_id for i in answer.items] == ["hit"]
    assert answer.reasons  # no model: degraded
    assert service.popular(5, ("category", {"Comedy"})).items == []
