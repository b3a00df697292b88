"""The recommendation logic behind the routes: live history, model, fallbacks.

Routes stay thin: they validate, call :class:`RecommendationService`, and return
its public schemas. Every fallback is reported in ``degraded_reasons``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
import weakref
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter

from mlrec.core.errors import BackendError, NotFoundError, ValidationError
from mlrec.features.realtime import RealtimeConfig, RealtimeFeatures
from mlrec.services.api.answers import ItemScore, Recommendations, items_public
from mlrec.services.api.batching import MicroBatcher, ScoringBatcher
from mlrec.services.api.breaker import CircuitBreaker
from mlrec.services.api.model_server import ModelServer, ServedModel
from mlrec.services.api.schemas import ItemsPublic
from mlrec.services.api.scoring import ScoringJob, TopK, score_jobs

__all__ = ["RecommendationService", "new_request_id", "parse_filter"]

ANSWERS = Counter(
    "mlrec_api_recommendations_total",
    "Recommendation answers by source (personal, popular) and whether degraded.",
    ["source", "degraded"],
)
# label lookups cost a few microseconds each: resolve the hot ones once
_PERSONAL = {False: ANSWERS.labels("personal", "false"), True: ANSWERS.labels("personal", "true")}
_POPULAR = {False: ANSWERS.labels("popular", "false"), True: ANSWERS.labels("popular", "true")}

Filter = tuple[str, set[str]]
_MAX_CACHED_FILTER_VALUES = 256
"""Largest filter (distinct names or ids) whose item mask is cached for later requests."""
_NO_SCORE = float("-inf")

_request_ids: tuple[str, Iterator[int]] | None = None


def _forget_request_ids() -> None:
    global _request_ids
    _request_ids = None


os.register_at_fork(after_in_child=_forget_request_ids)  # a forked child draws its own prefix


def new_request_id() -> str:
    """32 hex digits, unique across processes: a random per-process prefix and a counter.

    Cheaper than ``uuid4()`` (a system call for 16 random bytes) on every request.
    """
    global _request_ids
    if _request_ids is None:
        _request_ids = (uuid.uuid4().hex[:16], itertools.count())
    prefix, counter = _request_ids
    return f"{prefix}{next(counter):016x}"


def parse_filter(text: str | None) -> Filter | None:
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
    items: list[ItemScore] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    served: ServedModel | None = None
    """The model version the answer was computed with (None: none served)."""


@dataclass(slots=True)
class _UserRequest:
    """A known-user request, answered by :meth:`RecommendationService._answer_batch`."""

    user_id: str
    k: int
    exclude: bool
    parsed: Filter | None


@dataclass(slots=True)
class _Outcome:
    live: list[str]
    live_reason: str | None
    served: ServedModel | None
    top: TopK | None = None
    """None: the model cannot personalise for this user (the caller falls back)."""


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
        # One batch reads the live histories of concurrent users (one Redis round
        # trip) and scores them (one matrix product) in one worker-thread call.
        self.user_batcher: MicroBatcher[_UserRequest, _Outcome] = MicroBatcher(
            self._answer_batch, batcher.max_batch, batcher.max_wait
        )
        # Filter masks of the served model that computed them, held by a weak
        # reference: a model swapped out must be freed (with its score cache) even if
        # no filtered request comes after the swap to replace them.
        self._masks: tuple[
            weakref.ref[ServedModel] | None,
            dict[tuple[str, frozenset[str]], npt.NDArray[np.bool_]],
        ] = (None, {})
        # the mask of the last filter too large to cache, while its request holds it
        # (a batch request shares one parsed filter among its users)
        self._large_mask: (
            tuple[weakref.ref[ServedModel], weakref.ref[set[str]], npt.NDArray[np.bool_]] | None
        ) = None

    async def close(self) -> None:
        """Stop the batchers' worker tasks."""
        await self.user_batcher.close()
        await self.batcher.close()

    # -- helpers -------------------------------------------------------------------

    def _answer_batch(self, requests: list[_UserRequest]) -> list[_Outcome]:
        histories, reason = self.live_history([r.user_id for r in requests])
        served = self.models.current
        outcomes = [_Outcome(live, reason, served) for live in histories]
        if served is None:
            return outcomes
        model = served.model
        jobs: list[ScoringJob] = []
        scored: list[_Outcome] = []
        for request, outcome in zip(requests, outcomes, strict=True):
            if request.user_id not in model.users and not any(
                item in model.items for item in outcome.live
            ):
                continue
            jobs.append(
                self._job(
                    served,
                    request.user_id,
                    outcome.live,
                    request.k,
                    request.exclude,
                    request.parsed,
                )
            )
            scored.append(outcome)
        if jobs:
            for outcome, top in zip(scored, score_jobs(jobs), strict=True):
                outcome.top = top
        return outcomes

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

    def _allowed(self, served: ServedModel, parsed: Filter | None) -> npt.NDArray[np.bool_] | None:
        if parsed is None:
            return None
        kind, values = parsed
        owner, masks = self._masks
        if owner is None or owner() is not served:
            # masks belong to one served model (not to its id(), which a later model
            # can reuse once this one is freed); each request keeps the pair it took
            masks = {}
            self._masks = (weakref.ref(served), masks)
        if len(values) > _MAX_CACHED_FILTER_VALUES:
            # not cached: a key holds the filter's values, and a request may name
            # hundreds of thousands (its body's size), which 257 cached keys would
            # keep in memory for good; only the users of one request share its mask
            large = self._large_mask
            if large is not None and large[0]() is served and large[1]() is values:
                return large[2]
            computed = self._mask(served, kind, values)
            self._large_mask = (weakref.ref(served), weakref.ref(values), computed)
            return computed
        key = (kind, frozenset(values))
        mask = masks.get(key)
        if mask is None:
            mask = self._mask(served, kind, values)
            if len(masks) > 256:
                masks.clear()
            masks[key] = mask
        return mask

    @staticmethod
    def _mask(served: ServedModel, kind: str, values: set[str]) -> npt.NDArray[np.bool_]:
        """Which items of the served model pass the filter ``kind:values``."""
        model = served.model
        mask = np.zeros(model.n_items, dtype=bool)
        for index, item_id in enumerate(model.items.ids()):
            if kind == "items":
                mask[index] = item_id in values
            else:
                info = model.item_info.get(item_id)
                mask[index] = info is not None and bool(values & set(info.categories))
        return mask

    @staticmethod
    def _items(
        served: ServedModel,
        indices: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float32],
        first_rank: int = 1,
    ) -> list[ItemScore]:
        ids, titles = served.item_ids, served.titles
        out: list[ItemScore] = []
        rank = first_rank
        for index, score in zip(indices.tolist(), scores.tolist(), strict=True):
            if score > _NO_SCORE:  # drops excluded items (-inf) and broken scores (NaN)
                out.append(ItemScore(ids[index], score, rank, titles[index]))
                rank += 1
        return out

    def _job(
        self,
        served: ServedModel,
        user_id: str | None,
        live: Sequence[str],
        k: int,
        exclude: bool,
        parsed: Filter | None,
    ) -> ScoringJob:
        """The scoring job of a history: the user's training row, then live items.

        Live items weigh 1; an item in both appears twice and scoring sums repeats.
        With the served model's score cache the job carries only the live items.
        """
        model = served.model
        user = model.users.get(user_id) if user_id is not None else None
        lookup = model.items.get
        live_items = np.array([i for i in map(lookup, live) if i is not None], dtype=np.int64)
        allowed = self._allowed(served, parsed)
        if served.user_scores is not None:
            return ScoringJob(
                model, live_items, None, k, exclude, allowed, user, served.user_scores
            )
        if user is None:
            return ScoringJob(model, live_items, None, k, exclude, allowed)
        matrix = model.user_items
        start, end = matrix.indptr[user], matrix.indptr[user + 1]
        items = np.concatenate([matrix.indices[start:end], live_items])
        weights = np.concatenate(
            [matrix.data[start:end].astype(np.float32), np.ones(len(live_items), np.float32)]
        )
        return ScoringJob(model, items, weights, k, exclude, allowed, user)

    def popular(
        self, k: int, parsed: Filter | None = None, exclude: Collection[str] = ()
    ) -> _Answer:
        """The ``k`` most popular items now: live and training popularity on one scale.

        Both are counts of interactions. Live popularity (the event stream) is already
        decayed to now with the half-life ``popularity_half_life_seconds``; the model's
        training popularity (distinct users per item) is taken as interactions that
        happened at its training time (the version's ``created_at``) and decayed to
        now with the same half-life. An item scores

            live_decayed(item) + training_count(item) * 2 ** (-(now - trained_at) / half_life)

        and the ``k`` best sums are returned, best first, so scores never rise down the
        list (ties: the larger training count first, then the item id). ``now`` is the
        real-time features' clock. A model whose training time is unusable (missing,
        or after ``now``, i.e. clock skew) counts as trained now: its counts weigh in
        full, as for a fresh deployment. A model so old that the weight underflows
        still orders the items without live interactions by training count.

        Cheap enough for traffic: at most ``max(4k, 100)`` live items are read (the
        others count as 0 live) and the training side is one top-k over the item
        vector. Items failing ``parsed`` or listed in ``exclude`` are left out.
        An ``items`` filter passes the live items it names even if the model does not
        know them. Without a model, only live items are ranked (none under a category
        filter, which needs the model's catalogue) and the answer is degraded; so is an
        answer without live popularity while the feature store is unavailable.
        """
        return self._popular(self.models.current, k, parsed, exclude)

    def _live_popular(self, n: int) -> tuple[list[tuple[str, float]], str | None]:
        """The ``n`` most popular live items, or none and a reason if the store is down."""
        if self.realtime is None:
            return [], None
        if self.breaker.open:
            return [], f"feature store unavailable: {self.breaker.last_error}"
        try:
            found = self.realtime.popular_items(n)
        except BackendError as exc:
            self.breaker.failure(str(exc))
            return [], f"feature store unavailable: {exc}"
        self.breaker.success()
        return found, None

    def _training_weight(self, served: ServedModel) -> float:
        """What one training interaction weighs now: ``2^(-(now - trained_at)/half_life)``."""
        if self.realtime is not None:
            now = self.realtime.clock.now()
            half_life = self.realtime.config.popularity_half_life_seconds
        else:
            now, half_life = time.time(), RealtimeConfig().popularity_half_life_seconds
        created = served.version.created_at
        if not isinstance(created, datetime):
            return 1.0  # no usable training time: counts as trained now
        if created.tzinfo is None:  # the registry stores UTC
            created = created.replace(tzinfo=UTC)
        age = now - created.timestamp()
        return 1.0 if age <= 0 else float(2.0 ** (-age / half_life))

    def _popular(
        self, served: ServedModel | None, k: int, parsed: Filter | None, exclude: Collection[str]
    ) -> _Answer:
        answer = _Answer(served=served)
        live, reason = self._live_popular(max(k * 4, 100))
        if reason:
            answer.reasons.append(reason)
        if served is None:
            answer.reasons.append(self.models.last_error or "no model loaded")
        # item id -> (summed score, training count, item index or None)
        candidates: dict[str, tuple[float, float, int | None]] = {}
        exclude = exclude if isinstance(exclude, set | frozenset) else set(exclude)
        if served is not None:
            model = served.model
            counts = served.popularity
            weight = self._training_weight(served)
            allowed = self._allowed(served, parsed)
            lookup = model.items.get
            named = parsed[1] if parsed is not None and parsed[0] == "items" else None
            for item_id, score in live:
                if item_id in exclude:
                    continue
                index = lookup(item_id)
                if named is not None:
                    # items:<id> names items outright, known to the model or not
                    if item_id not in named:
                        continue
                elif allowed is not None and (index is None or not allowed[index]):
                    continue
                count = float(counts[index]) if index is not None else 0.0
                candidates[item_id] = (score + count * weight, count, index)
            # The best training counts complete the candidates: any other item has no
            # live score read and a count no larger (if equal, an id after theirs, as
            # popular_order breaks ties), so it cannot rank above them.
            order = served.popular_order
            if allowed is not None:
                order = order[allowed[order]]
            excluded = np.fromiter(
                (i for i in map(lookup, exclude) if i is not None), dtype=np.int64
            )
            head = order[: k + len(excluded)]
            if len(excluded):
                head = head[~np.isin(head, excluded)]
            ids = served.item_ids
            for index in head[:k].tolist():
                if ids[index] not in candidates:
                    count = float(counts[index])
                    candidates[ids[index]] = (count * weight, count, index)
        elif parsed is None or parsed[0] == "items":
            # a category needs the model's catalogue; items:<id> names items outright
            for item_id, score in live:
                if item_id not in exclude and (parsed is None or item_id in parsed[1]):
                    candidates[item_id] = (score, 0.0, None)
        ranked = sorted(candidates.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
        titles = served.titles if served is not None else None
        for rank, (item_id, (score, _, index)) in enumerate(ranked[:k], start=1):
            title = titles[index] if titles is not None and index is not None else None
            answer.items.append(ItemScore(item_id, score, rank, title))
        return answer

    # -- requests ------------------------------------------------------------------

    async def recommend(
        self,
        user_id: str | None,
        k: int,
        exclude_seen: bool = True,
        item_filter: str | Filter | None = None,
        recent_item_ids: Sequence[str] = (),
        live: Sequence[str] | None = None,
        live_reason: str | None = None,
    ) -> Recommendations:
        """Recommendations for a (possibly unknown or anonymous) user.

        Known users and users with any live history are scored by the model from
        their training history plus live interactions; everyone else gets popular
        items. Redis or model outages degrade the answer instead of failing.

        Args:
            user_id: the user, or None for an anonymous one.
            recent_item_ids: items the caller says the user just interacted with.
            live: the user's live history if the caller already read it; None reads it.
            live_reason: why ``live`` is empty, if the read failed.
            item_filter: the filter's text, or parsed by :func:`parse_filter` (once for
                the users of a batch: a filter may be as large as a request body).
        """
        parsed = item_filter if isinstance(item_filter, tuple) else parse_filter(item_filter)
        if live is None and user_id and not recent_item_ids:
            # the common case: history read and scoring batched with concurrent users
            outcome = await self.user_batcher.submit(_UserRequest(user_id, k, exclude_seen, parsed))
            live, live_reason = outcome.live, outcome.live_reason
            if outcome.top is not None and outcome.served is not None:
                return self._personal(user_id, outcome.served, outcome.top, live_reason)
        elif live is None:
            live = []
        history = list(recent_item_ids) + [i for i in live if i not in recent_item_ids]
        served = self.models.current
        known = served is not None and user_id is not None and user_id in served.model.users
        usable = served is not None and any(i in served.model.items for i in history)
        if served is None or not (known or usable):
            # Popular items, without the ones the user has seen; a missing model is
            # reported by popular(). Reads Redis: off the event loop, so an outage
            # stalls this request only.
            seen = set(history) if exclude_seen else set()
            answer = await asyncio.to_thread(self._popular, served, k, parsed, seen)
            reasons = [live_reason] if live_reason else []
            # an open breaker skips both live reads with the same reason: report it once
            reasons.extend(r for r in answer.reasons if r not in reasons)
            _POPULAR[bool(reasons)].inc()
            return Recommendations(
                user_id=user_id,
                items=answer.items,
                served=served,
                source="popular",
                request_id=new_request_id(),
                degraded_reasons=reasons,
            )
        top = await self.batcher.score(self._job(served, user_id, history, k, exclude_seen, parsed))
        return self._personal(user_id, served, top, live_reason)

    def _personal(
        self, user_id: str | None, served: ServedModel, top: TopK, live_reason: str | None
    ) -> Recommendations:
        reasons = [live_reason] if live_reason else []
        _PERSONAL[bool(reasons)].inc()
        return Recommendations(
            user_id=user_id,
            items=self._items(served, *top),
            served=served,
            source="personal",
            request_id=new_request_id(),
            degraded_reasons=reasons,
        )

    def similar(self, item_id: str, k: int) -> ItemsPublic:
        """Items most similar to ``item_id`` under the served model."""
        served = self.models.current
        if served is None:
            raise NotFoundError(self.models.last_error or "no model loaded")
        if item_id not in served.model.items:
            raise NotFoundError(f"unknown item {item_id!r}: the served model has never seen it")
        items: list[ItemScore] = []
        for rec in served.model.similar_items(item_id, k):
            info = served.model.item_info.get(rec.item_id)
            items.append(
                ItemScore(rec.item_id, rec.score, len(items) + 1, info.title if info else None)
            )
        return items_public(items, served, new_request_id(), item_id=item_id)

    def popular_public(self, k: int, item_filter: str | None = None) -> ItemsPublic:
        """The popular list as a public response."""
        answer = self.popular(k, parse_filter(item_filter))
        return items_public(answer.items, answer.served, new_request_id(), answer.reasons)
