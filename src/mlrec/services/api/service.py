"""The recommendation logic behind the routes: live history, model, fallbacks.

Routes stay thin: they validate, call :class:`RecommendationService`, and return
its public schemas. Every fallback is reported in ``degraded_reasons``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter

from mlrec.core.errors import BackendError, NotFoundError, ValidationError
from mlrec.features.realtime import RealtimeFeatures
from mlrec.models.base import top_k
from mlrec.services.api.batching import MicroBatcher, ScoringBatcher
from mlrec.services.api.breaker import CircuitBreaker
from mlrec.services.api.model_server import ModelServer, ServedModel
from mlrec.services.api.schemas import (
    ItemsPublic,
    ModelPublic,
    RecommendationsPublic,
    RecommendedItem,
)

__all__ = ["RecommendationService", "parse_filter"]

ANSWERS = Counter(
    "mlrec_api_recommendations_total",
    "Recommendation answers by source (personal, popular) and whether degraded.",
    ["source", "degraded"],
)


def parse_filter(text: str | None) -> tuple[str, set[str]] | None:
    """``category:Comedy|Drama`` -> ``("category", {"Comedy", "Drama"})``."""
    if not text:
        return None
    kind, sep, values = text.partition(":")
    if not sep or kind not in ("category", "items") or not values:
        raise ValidationError(
            f"bad filter {text!r}: use category:<name>[|<name>...] or items:<id>[|<id>...]"
        )
    return kind, {v for v in values.split("|") if v}


@dataclass
class _Answer:
    items: list[RecommendedItem] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


class RecommendationService:
    """Answers recommendation, similar-item and popular-item requests.

    Args:
        models: the model server (may serve nothing yet).
        realtime: live user histories and popularity; None = not configured.
        batcher: the micro-batcher for scoring.
        history_limit: recent interactions used per request.
    """

    def __init__(
        self,
        models: ModelServer,
        realtime: RealtimeFeatures | None,
        batcher: ScoringBatcher,
        history_limit: int = 50,
    ) -> None:
        self.models = models
        self.realtime = realtime
        self.batcher = batcher
        self.history_limit = history_limit
        self.breaker = CircuitBreaker()
        self.history_batcher: MicroBatcher[str, tuple[list[str], str | None]] = MicroBatcher(
            self._live_histories, batcher.max_batch, 0.0005
        )
        self._masks: dict[tuple[int, str, frozenset[str]], npt.NDArray[np.bool_]] = {}

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def model_public(served: ServedModel | None) -> ModelPublic | None:
        if served is None:
            return None
        v = served.version
        return ModelPublic(name=v.name, version=v.version, algorithm=v.algorithm)

    def _live_histories(self, user_ids: list[str]) -> list[tuple[list[str], str | None]]:
        histories, reason = self.live_history(user_ids)
        return [(history, reason) for history in histories]

    def live_history(self, user_ids: Sequence[str]) -> tuple[list[list[str]], str | None]:
        """Recent items of each user, or empty lists and a reason if the store is down."""
        empty: list[list[str]] = [[] for _ in user_ids]
        if self.realtime is None:
            return empty, None
        if self.breaker.open:
            return empty, f"feature store unavailable: {self.breaker.last_error}"
        try:
            found = self.realtime.recent_items_many(list(user_ids), self.history_limit)
        except BackendError as exc:
            self.breaker.failure(str(exc))
            return empty, f"feature store unavailable: {exc}"
        self.breaker.success()
        return [[item for item, _ in items] for items in found], None

    def _allowed(
        self, served: ServedModel, parsed: tuple[str, set[str]] | None
    ) -> npt.NDArray[np.bool_] | None:
        if parsed is None:
            return None
        kind, values = parsed
        key = (id(served), kind, frozenset(values))
        mask = self._masks.get(key)
        if mask is None:
            model = served.model
            mask = np.zeros(model.n_items, dtype=bool)
            for index, item_id in enumerate(model.items.ids()):
                if kind == "items":
                    mask[index] = item_id in values
                else:
                    info = model.item_info.get(item_id)
                    mask[index] = info is not None and bool(values & set(info.categories))
            if len(self._masks) > 256:
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def _items(
        self, served: ServedModel, indices: npt.NDArray[np.int64], scores: npt.NDArray[np.float32]
    ) -> list[RecommendedItem]:
        model = served.model
        out: list[RecommendedItem] = []
        for index, score in zip(indices, scores, strict=True):
            if not np.isfinite(score):
                continue
            item_id = model.items.id(int(index))
            info = model.item_info.get(item_id)
            out.append(
                RecommendedItem(
                    item_id=item_id,
                    score=float(score),
                    rank=len(out) + 1,
                    title=info.title if info else None,
                )
            )
        return out

    def _history(
        self, served: ServedModel, user_id: str | None, live: Sequence[str]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Item indices and weights: the user's training row plus live items (weight 1)."""
        model = served.model
        weights: dict[int, float] = {}
        if user_id is not None:
            index = model.users.get(user_id)
            if index is not None:
                matrix = model.user_items
                start, end = matrix.indptr[index], matrix.indptr[index + 1]
                weights = dict(
                    zip(
                        matrix.indices[start:end].tolist(),
                        matrix.data[start:end].tolist(),
                        strict=True,
                    )
                )
        for item_id in live:
            item = model.items.get(item_id)
            if item is not None:
                weights[item] = weights.get(item, 0.0) + 1.0
        items = np.fromiter(weights.keys(), dtype=np.int64, count=len(weights))
        values = np.fromiter(weights.values(), dtype=np.float32, count=len(weights))
        order = np.argsort(items)
        return items[order], values[order]

    def popular(self, k: int, parsed: tuple[str, set[str]] | None = None) -> _Answer:
        """Live time-decayed popularity, topped up with the model's training popularity.

        Live popularity reflects what people interact with now; while it knows fewer
        than ``k`` items (a fresh deployment) the training popularity fills the list.
        """
        answer = _Answer()
        served = self.models.current
        if self.realtime is not None and not self.breaker.open:
            try:
                live = self.realtime.popular_items(max(k * 2, 20))
            except BackendError as exc:
                self.breaker.failure(str(exc))
                answer.reasons.append(f"feature store unavailable: {exc}")
                live = []
            allowed = self._allowed(served, parsed) if served is not None else None
            for item_id, score in live:
                if parsed is not None:
                    index = served.model.items.get(item_id) if served else None
                    if index is None or allowed is None or not allowed[index]:
                        continue
                info = served.model.item_info.get(item_id) if served else None
                answer.items.append(
                    RecommendedItem(
                        item_id=item_id,
                        score=score,
                        rank=len(answer.items) + 1,
                        title=info.title if info else None,
                    )
                )
                if len(answer.items) == k:
                    return answer
        if served is None:
            if not answer.items:
                answer.reasons.append(self.models.last_error or "no model loaded")
            return answer
        scores = served.popularity.copy()[None, :]
        allowed = self._allowed(served, parsed)
        if allowed is not None:
            scores[0, ~allowed] = -np.inf
        for item in answer.items:
            index = served.model.items.get(item.item_id)
            if index is not None:
                scores[0, index] = -np.inf
        indices, best = top_k(scores, k - len(answer.items))
        for extra in self._items(served, indices[0], best[0]):
            answer.items.append(extra.model_copy(update={"rank": len(answer.items) + 1}))
        return answer

    # -- requests ------------------------------------------------------------------

    async def recommend(
        self,
        user_id: str | None,
        k: int,
        exclude_seen: bool = True,
        item_filter: str | None = None,
        recent_item_ids: Sequence[str] = (),
        live: Sequence[str] | None = None,
        live_reason: str | None = None,
    ) -> RecommendationsPublic:
        """Recommendations for a (possibly unknown or anonymous) user.

        Known users and users with any live history are scored by the model from
        their training history plus live interactions; everyone else gets popular
        items. Redis or model outages degrade the answer instead of failing.
        """
        parsed = parse_filter(item_filter)
        reasons: list[str] = []
        if live is None:
            if user_id:
                live, live_reason = await self.history_batcher.submit(user_id)
            else:
                live = []
        if live_reason:
            reasons.append(live_reason)
        history = list(recent_item_ids) + [i for i in live if i not in recent_item_ids]
        served = self.models.current
        request_id = uuid.uuid4().hex
        known = served is not None and user_id is not None and user_id in served.model.users
        usable = served is not None and any(i in served.model.items for i in history)
        if served is None or not (known or usable):
            if served is None:
                reasons.append(self.models.last_error or "no model loaded")
            answer = self.popular(k, parsed)
            reasons.extend(answer.reasons)
            ANSWERS.labels("popular", str(bool(reasons)).lower()).inc()
            return RecommendationsPublic(
                user_id=user_id,
                items=[i for i in answer.items if not (exclude_seen and i.item_id in history)][:k],
                model=self.model_public(served),
                source="popular",
                request_id=request_id,
                degraded=bool(reasons),
                degraded_reasons=reasons,
            )
        items, weights = self._history(served, user_id, history)
        indices, scores = await self.batcher.top_k(
            served.model, items, weights, k, exclude_seen, self._allowed(served, parsed)
        )
        ANSWERS.labels("personal", str(bool(reasons)).lower()).inc()
        return RecommendationsPublic(
            user_id=user_id,
            items=self._items(served, indices, scores),
            model=self.model_public(served),
            source="personal",
            request_id=request_id,
            degraded=bool(reasons),
            degraded_reasons=reasons,
        )

    def similar(self, item_id: str, k: int) -> ItemsPublic:
        """Items most similar to ``item_id`` under the served model."""
        served = self.models.current
        if served is None:
            raise NotFoundError(self.models.last_error or "no model loaded")
        if item_id not in served.model.items:
            raise NotFoundError(f"unknown item {item_id!r}: the served model has never seen it")
        found = served.model.similar_items(item_id, k)
        items: list[RecommendedItem] = []
        for rec in found:
            info = served.model.item_info.get(rec.item_id)
            items.append(
                RecommendedItem(
                    item_id=rec.item_id,
                    score=rec.score,
                    rank=len(items) + 1,
                    title=info.title if info else None,
                )
            )
        return ItemsPublic(
            item_id=item_id,
            items=items,
            model=self.model_public(served),
            request_id=uuid.uuid4().hex,
        )

    def popular_public(self, k: int, item_filter: str | None = None) -> ItemsPublic:
        """The popular list as a public response."""
        answer = self.popular(k, parse_filter(item_filter))
        return ItemsPublic(
            items=answer.items,
            model=self.model_public(self.models.current),
            request_id=uuid.uuid4().hex,
            degraded=bool(answer.reasons),
            degraded_reasons=answer.reasons,
        )
