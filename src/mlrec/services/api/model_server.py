"""Serving the production model: load at start, hot-swap on promotion, never drop a request.

Requests take a reference to the current :class:`ServedModel` once and use it to
the end, so swapping the reference (an atomic assignment) never disturbs a request
in flight.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter, Gauge

from mlrec.core.errors import MlrecError, ModelError, NotFoundError
from mlrec.models.artifact_store import ArtifactStore, load_version
from mlrec.models.base import Recommender
from mlrec.models.registry import ModelRegistry, ModelVersion
from mlrec.services.api.periodic import Periodic
from mlrec.services.api.scoring import UserScoreCache

__all__ = ["ModelServer", "ServedModel"]

log = logging.getLogger(__name__)

MODEL_LOADS = Counter(
    "mlrec_api_model_loads_total",
    "Loads of the registry's production version, by result: loaded (the first version "
    "served and each hot-swap) or failed (the previous version, if any, keeps serving).",
    ["result"],
)
_LOADED, _LOAD_FAILED = MODEL_LOADS.labels("loaded"), MODEL_LOADS.labels("failed")
MODEL_ERROR = Gauge(
    "mlrec_api_model_error",
    "1 while the registry's production version is not the one served (it cannot be "
    "loaded, the registry does not answer, or no version is in production), as /ready "
    "reports; 0 otherwise.",
    # one series for the service: 1 if any live worker is stuck
    multiprocess_mode="livemax",
)

UNLOADABLE_RETRY_S = 600.0
"""How long an artifact that could not be loaded (its store copy included), or that
the store does not have, is left alone before another attempt; a promotion of another
version is loaded at once."""

REGISTRY_TIMEOUT_S = 10.0
"""Longest :meth:`ModelServer.refresh` waits for the registry's answer. A connection
that hangs (a network partition, a load balancer that dropped it silently) must not
hold the poller and the promotion listener forever: the lookup runs in a thread of
its own, and a later refresh asks again on another connection."""


class _RegistryTimeoutError(Exception):
    pass


@dataclass(frozen=True)
class ServedModel:
    """A loaded model version and what serving needs precomputed."""

    model: Recommender
    version: ModelVersion
    popularity: npt.NDArray[np.float32]
    """Distinct users per item in training: the cold-start ranking."""
    item_ids: list[str]
    """External id of each item index."""
    titles: list[str | None]
    """Title of each item index, if known."""
    popular_order: npt.NDArray[np.int64]
    """Item indices by training popularity: the larger count first, ties by item id."""
    user_scores: UserScoreCache | None = None
    """Known users' training-history scores, when the model's scores are additive."""

    @classmethod
    def build(
        cls, model: Recommender, version: ModelVersion, score_cache_bytes: int = 0
    ) -> ServedModel:
        matrix = model.user_items
        counts = np.diff(matrix.tocsc().indptr).astype(np.float32)
        cache = None
        if score_cache_bytes > 0 and model.additive_weights is not None:
            cache = UserScoreCache(model, score_cache_bytes)
        item_ids = list(model.items.ids())
        info = model.item_info
        titles = [info[i].title if i in info else None for i in item_ids]
        return cls(model, version, counts, item_ids, titles, popular_order(counts, item_ids), cache)


def popular_order(counts: npt.NDArray[np.float32], item_ids: list[str]) -> npt.NDArray[np.int64]:
    """Item indices by ``counts``, largest first, equal counts by item id (ascending)."""
    by_id = np.empty(len(item_ids), dtype=np.int64)
    by_id[sorted(range(len(item_ids)), key=item_ids.__getitem__)] = np.arange(len(item_ids))
    order: npt.NDArray[np.int64] = np.lexsort((by_id, -counts.astype(np.float64)))
    return order.astype(np.int64, copy=False)


class ModelServer:
    """Holds the production version of one model name and follows promotions.

    Args:
        registry: where production versions are looked up.
        store: where artifacts are fetched from by sha256.
        cache_dir: local artifact cache.
        name: the model name to serve.
        score_cache_bytes: memory for known users' cached scores (0 = no cache).
        registry_timeout_s: longest a registry lookup is waited for.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        store: ArtifactStore,
        cache_dir: Path,
        name: str,
        score_cache_bytes: int = 0,
        registry_timeout_s: float = REGISTRY_TIMEOUT_S,
    ) -> None:
        self.registry = registry
        self.store = store
        self.cache_dir = cache_dir
        self.name = name
        self.score_cache_bytes = score_cache_bytes
        self.registry_timeout_s = registry_timeout_s
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        # artifact sha256 -> monotonic time before which it is not loaded again: the
        # load fetched it anew and still failed (e.g. an algorithm this mlrec does not
        # know), so each poll would download it again for nothing
        self._unloadable_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._poller: Periodic | None = None

    def _production(self) -> ModelVersion | None:
        """The registry's production version, given up on after ``registry_timeout_s``."""
        found: list[ModelVersion | None] = []
        failed: list[Exception] = []
        done = threading.Event()

        def lookup() -> None:
            try:
                found.append(self.registry.production(self.name))
            except Exception as exc:
                failed.append(exc)
            finally:
                done.set()

        threading.Thread(target=lookup, name="registry-lookup", daemon=True).start()
        if not done.wait(self.registry_timeout_s):
            raise _RegistryTimeoutError(f"no answer within {self.registry_timeout_s:g} s")
        if failed:
            raise failed[0]
        return found[0]

    def refresh(self, announced: bool = False) -> bool:
        """Load the production version if it differs from the served one.

        Returns True if a new version is now served. Errors are kept in
        :attr:`last_error` and the previous model keeps serving. An artifact that
        could not be loaded is not fetched again for :data:`UNLOADABLE_RETRY_S` by the
        poll, but an ``announced`` promotion (someone promoted again, e.g. after
        repairing the stored artifact) tries it at once. When the registry
        has no production version of the name any more (it was archived or moved
        back to staging), nothing is served: answers fall back to popular items,
        degraded with the reason, as on a replica started now.
        """
        with self._lock:
            try:
                wanted = self._production()
                if wanted is None:
                    self.last_error = f"no production version of model {self.name!r}"
                    if self.current is not None:
                        log.warning(
                            "%s: %s is withdrawn, no longer served",
                            self.last_error,
                            self.current.version.ref,
                        )
                        self.current = None
                    return False
                served = self.current
                if served is not None and served.version.ref == wanted.ref:
                    self.last_error = None
                    return False
                sha = wanted.artifact_sha256
                if announced:
                    self._unloadable_until.pop(sha, None)
                if time.monotonic() < self._unloadable_until.get(sha, 0.0):
                    return False  # last_error still says why
                try:
                    model = load_version(wanted, self.store, self.cache_dir)
                    loaded = ServedModel.build(model, wanted, self.score_cache_bytes)
                except Exception as exc:
                    _LOAD_FAILED.inc()
                    if isinstance(exc, ModelError | NotFoundError):  # unreadable, or gone
                        self._unloadable_until[sha] = time.monotonic() + UNLOADABLE_RETRY_S
                    raise
                self.current = loaded
                self.last_error = None
                _LOADED.inc()
                log.info("serving model %s (%s)", wanted.ref, wanted.algorithm)
                return True
            except (MlrecError, OSError) as exc:
                self.last_error = f"cannot load model {self.name!r}: {exc}"
                log.warning(self.last_error)
                return False
            except Exception as exc:  # a broken DB connection must not kill serving
                self.last_error = f"cannot reach the model registry: {exc}"
                log.warning(self.last_error)
                return False
            finally:
                MODEL_ERROR.set(1.0 if self.last_error else 0.0)

    def start(self, poll_seconds: float) -> None:
        """Poll the registry in a background thread (the fallback to promotion events)."""
        self._poller = Periodic("model-poller", self.refresh, poll_seconds)
        self._poller.start()

    def stop(self) -> None:
        """Stop polling."""
        if self._poller is not None:
            self._poller.stop()
