"""The feature store: typed, validated, TTL-honouring access to online features.

Example:
    >>> store = FeatureStore(InMemoryOnlineStore(), [user_profile])        # doctest: +SKIP
    >>> store.write_features("user_profile", {"u1": {"age": 31.0}})        # doctest: +SKIP
    >>> store.get_online_features("user_profile", ["u1", "u2"]).to_dicts() # doctest: +SKIP
    [{'user_profile:age': 31.0}, {'user_profile:age': None}]
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlrec.core.clock import MAX_CLOCK_SKEW_SECONDS, Clock, SystemClock
from mlrec.core.errors import NotFoundError, ValidationError
from mlrec.features.codec import decoder, encode
from mlrec.features.definitions import Feature, FeatureView, check_entity_id
from mlrec.features.metrics import (
    READ_LATENCY,
    READ_RESULTS,
    STALENESS,
    WRITE_LATENCY,
    WRITE_ROWS,
)
from mlrec.features.online_store import OnlineStore, RowWrite

__all__ = ["MAX_BATCH_ENTITIES", "FeatureStore", "OnlineFeatures"]

MAX_BATCH_ENTITIES = 1000


_MAX_PLANS = 1024
"""Most read plans (one per distinct list of refs) kept before the cache starts over."""


@dataclass
class OnlineFeatures:
    """The answer of :meth:`FeatureStore.get_online_features`.

    Attributes:
        refs: the feature references, ``view:feature``, in column order.
        entity_ids: the entities, in row order.
        values: ``values[row][column]``; a missing or stale value is the feature's default.
        missing: per row, the refs that had no value (entity absent or expired).
        stale: per row, the refs whose value was older than its view's TTL.
    """

    refs: list[str]
    entity_ids: list[str]
    values: list[list[Any]]
    missing: list[list[str]] = field(default_factory=list)
    stale: list[list[str]] = field(default_factory=list)

    def to_dicts(self) -> list[dict[str, Any]]:
        """One ``{ref: value}`` dict per entity."""
        return [dict(zip(self.refs, row, strict=True)) for row in self.values]


@dataclass(frozen=True)
class _Group:
    """The features of one view in a plan, with everything a read needs precomputed."""

    view: FeatureView
    features: tuple[Feature, ...]
    names: tuple[str, ...]
    columns: tuple[int, ...]
    decoders: tuple[Callable[[bytes], Any], ...]
    latency: Any  # labelled metric children: .labels() costs more than the observation
    hits: Any
    misses: Any
    stales: Any
    staleness: Any


@dataclass(frozen=True)
class _Plan:
    """A parsed list of refs: per view, the features to read and their output columns."""

    refs: list[str]
    groups: list[_Group]


class FeatureStore:
    """Reads and writes online features of registered views.

    Args:
        online: the online store backend (memory, SQLite or Redis).
        views: the feature views this store serves.
        clock: the time source for staleness (injectable for tests).
    """

    def __init__(
        self, online: OnlineStore, views: Iterable[FeatureView] = (), clock: Clock | None = None
    ) -> None:
        self.online = online
        self.clock = clock or SystemClock()
        self._views: dict[str, FeatureView] = {}
        self._plans: dict[tuple[str, ...], _Plan] = {}
        for view in views:
            self.register(view)

    # -- definitions ------------------------------------------------------------------

    def register(self, view: FeatureView) -> None:
        """Serve ``view`` (replacing a previous definition of the same name)."""
        self._views[view.name] = view
        self._plans.clear()

    @property
    def views(self) -> dict[str, FeatureView]:
        return dict(self._views)

    def view(self, name: str) -> FeatureView:
        """A registered view; :class:`NotFoundError` naming the known ones otherwise."""
        found = self._views.get(name)
        if found is None:
            known = ", ".join(sorted(self._views)) or "none"
            raise NotFoundError(f"unknown feature view {name!r} (known: {known})")
        return found

    def _plan(self, refs: tuple[str, ...]) -> _Plan:
        plan = self._plans.get(refs)
        if plan is not None:
            return plan
        columns: list[str] = []
        by_view: dict[str, list[tuple[Feature, str, int]]] = {}
        for ref in refs:
            view_name, sep, feature_name = ref.partition(":")
            view = self.view(view_name)
            if not view.online:
                raise ValidationError(f"feature view {view_name!r} is offline-only")
            features = view.features if not sep else (view.feature(feature_name),)
            for feature in features:
                column = f"{view.name}:{feature.name}"
                by_view.setdefault(view.name, []).append((feature, column, len(columns)))
                columns.append(column)
        groups = [
            _Group(
                view=self._views[name],
                features=tuple(f for f, _, _ in items),
                names=tuple(f.name for f, _, _ in items),
                columns=tuple(i for _, _, i in items),
                decoders=tuple(decoder(f.dtype) for f, _, _ in items),
                latency=READ_LATENCY.labels(name),
                hits=READ_RESULTS.labels(name, "hit"),
                misses=READ_RESULTS.labels(name, "miss"),
                stales=READ_RESULTS.labels(name, "stale"),
                staleness=STALENESS.labels(name),
            )
            for name, items in by_view.items()
        ]
        plan = _Plan(columns, groups)
        if len(self._plans) >= _MAX_PLANS:  # callers choose the refs: keep memory bounded
            self._plans.clear()
        self._plans[refs] = plan
        return plan

    # -- reads -----------------------------------------------------------------------

    def get_online_features(
        self, refs: str | Sequence[str], entity_ids: Sequence[str]
    ) -> OnlineFeatures:
        """Latest values of ``refs`` for ``entity_ids``, never older than each view's TTL.

        Args:
            refs: a view name (all its features) or a list of view names / ``view:feature``.
            entity_ids: up to :data:`MAX_BATCH_ENTITIES` entity ids.

        Raises:
            NotFoundError: an unknown view.
            ValidationError: an unknown feature, a bad entity id, too many entities.
            BackendUnavailableError: the online store cannot be reached.
        """
        plan = self._plan((refs,) if isinstance(refs, str) else tuple(refs))
        if len(entity_ids) > MAX_BATCH_ENTITIES:
            raise ValidationError(
                f"at most {MAX_BATCH_ENTITIES} entities per call, got {len(entity_ids)}"
            )
        for entity_id in entity_ids:
            check_entity_id(entity_id)
        n_rows, n_cols = len(entity_ids), len(plan.refs)
        values: list[list[Any]] = [[None] * n_cols for _ in range(n_rows)]
        missing: list[list[str]] = [[] for _ in range(n_rows)]
        stale: list[list[str]] = [[] for _ in range(n_rows)]
        now = self.clock.now()
        refs = plan.refs
        for group in plan.groups:
            started = time.perf_counter()
            rows = self.online.read_rows(group.view.name, entity_ids, group.names)
            ttl = group.view.ttl_seconds
            features, columns = group.features, group.columns
            decoded = tuple(zip(group.names, group.decoders, columns, strict=True))
            oldest_age = 0.0
            hits = misses = stales = 0
            for r, stored in enumerate(rows):
                out = values[r]
                if stored is None or now - stored.written_at > ttl:
                    if stored is None:
                        misses += 1
                        report = missing[r]
                    else:
                        stales += 1
                        report = stale[r]
                    for feature, column in zip(features, columns, strict=True):
                        out[column] = feature.default
                        report.append(refs[column])
                    continue
                hits += 1
                oldest_age = max(oldest_age, now - stored.written_at)
                raw_values = stored.values
                for (name, decode_value, column), feature in zip(decoded, features, strict=True):
                    raw = raw_values.get(name)
                    if raw is not None:
                        try:
                            out[column] = decode_value(raw)
                            continue
                        except (ValueError, struct.error):
                            # bytes of another type (an earlier version of the view
                            # declared the feature differently): no value, not a 500
                            pass
                    out[column] = feature.default
                    missing[r].append(refs[column])
            group.latency.observe(time.perf_counter() - started)
            if hits:
                group.hits.inc(hits)
                group.staleness.observe(oldest_age)
            if misses:
                group.misses.inc(misses)
            if stales:
                group.stales.inc(stales)
        return OnlineFeatures(plan.refs, list(entity_ids), values, missing, stale)

    # -- writes ----------------------------------------------------------------------

    def encode_rows(
        self,
        view: FeatureView,
        rows: Mapping[str, Mapping[str, Any]],
        written_at: float | Mapping[str, float] | None = None,
    ) -> list[RowWrite]:
        """Validate and encode rows for ``view`` without writing (all or nothing)."""
        now = self.clock.now()
        encoded: list[RowWrite] = []
        for entity_id, features in rows.items():
            check_entity_id(entity_id)
            if not features:
                raise ValidationError(f"entity {entity_id!r}: no feature values given")
            values = {name: encode(view.feature(name), value) for name, value in features.items()}
            if isinstance(written_at, Mapping):
                timestamp = float(written_at.get(entity_id, now))
            else:
                timestamp = now if written_at is None else float(written_at)
            if not math.isfinite(timestamp) or timestamp > now + MAX_CLOCK_SKEW_SECONDS:
                # a time ahead of now would keep the row from ever being reported stale
                raise ValidationError(
                    f"entity {entity_id!r}: timestamp {timestamp} is not a time up to "
                    f"{MAX_CLOCK_SKEW_SECONDS:.0f} s from now"
                )
            encoded.append(RowWrite(entity_id, values, timestamp))
        return encoded

    def write_features(
        self,
        view_name: str,
        rows: Mapping[str, Mapping[str, Any]],
        written_at: float | Mapping[str, float] | None = None,
    ) -> int:
        """Write ``{entity_id: {feature: value}}`` to a view.

        Every row is validated before anything is written, and each entity's row is
        written atomically, so a bad value never leaves a partial write.

        Returns:
            the number of entities written: a row older than the entity's stored one
            is skipped (the last write by time wins) and not counted.
        """
        view = self.view(view_name)
        if not view.online:
            raise ValidationError(f"feature view {view_name!r} is offline-only")
        encoded = self.encode_rows(view, rows, written_at)
        started = time.perf_counter()
        written = self.online.write_rows(view.name, encoded, view.ttl_seconds, view.max_entities)
        WRITE_LATENCY.labels(view.name).observe(time.perf_counter() - started)
        WRITE_ROWS.labels(view.name).inc(written)
        return written
