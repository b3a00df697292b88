"""Keep the API's feature views in step with the feature registry.

``mlrec features apply`` records new and changed views in the metadata database; a
running API picks them up at its next poll (as it follows model promotions by
polling the model registry), so a new view is served and a changed TTL decides
staleness without a restart.
"""

from __future__ import annotations

import logging

from mlrec.core.errors import BackendUnavailableError
from mlrec.features.registry import FeatureRegistry
from mlrec.features.store import FeatureStore
from mlrec.services.api.periodic import Periodic

__all__ = ["FeatureViewFollower"]

log = logging.getLogger(__name__)


class FeatureViewFollower:
    """Registers in ``store`` every registry view that is new or changed.

    Args:
        registry: where ``mlrec features apply`` records views.
        store: the API's feature store.
    """

    def __init__(self, registry: FeatureRegistry, store: FeatureStore) -> None:
        self.registry = registry
        self.store = store
        self._poller: Periodic | None = None

    def refresh(self) -> int:
        """Register new and changed views now; how many. Never raises (a database
        outage keeps the views served so far)."""
        try:
            views = [registered.view for registered in self.registry.list_views()]
        except BackendUnavailableError as exc:
            # an outage: one line per poll, not a traceback every few seconds
            log.warning("cannot read the feature registry (%s); keeping the views served", exc)
            return 0
        except Exception:
            log.warning("cannot read the feature registry; keeping the views served", exc_info=True)
            return 0
        served = self.store.views
        changed = [view for view in views if served.get(view.name) != view]
        for view in changed:
            self.store.register(view)
            log.info("serving feature view %s (ttl %g s)", view.name, view.ttl_seconds)
        return len(changed)

    def start(self, poll_seconds: float) -> None:
        """Refresh every ``poll_seconds`` in a background thread."""
        self._poller = Periodic("feature-views", self.refresh, poll_seconds)
        self._poller.start()

    def stop(self) -> None:
        """Stop polling."""
        if self._poller is not None:
            self._poller.stop()
